//! `network inspect`: Docker's JSON for a network, from the network library's records.

use minibox_netns::{short, Network, Store};
use serde_json::{json, Map, Value};

use super::Result;

/// Docker's JSON for one network; containers are named by their short id (the caller knows
/// their names).
pub fn inspect(store: &Store, net: &Network) -> Result<Value> {
    let mtu = minibox_netns::links()
        .ok()
        .and_then(|links| links.into_iter().find(|l| l.name == net.bridge))
        .map(|l| l.mtu);
    let mut containers = Map::new();
    for a in store
        .attachments()?
        .into_iter()
        .filter(|a| a.network == net.name)
    {
        let id = super::container_of(&a);
        containers.insert(
            id.clone(),
            json!({
                "Name": short(&id),
                "EndpointID": a.veth,
                "MacAddress": a.mac,
                "IPv4Address": format!("{}/{}", a.address, a.prefix_len),
                "IPv6Address": a.ipv6.map(|v6| format!("{}/{}", v6.address, v6.prefix_len)).unwrap_or_default(),
            }),
        );
    }
    let mut options = json!({
        "com.docker.network.bridge.name": net.bridge,
        "com.docker.network.bridge.enable_ip_masquerade": "true",
    });
    if let Some(mtu) = mtu {
        options["com.docker.network.driver.mtu"] = mtu.to_string().into();
    }
    let mut config =
        vec![json!({"Subnet": net.subnet.to_string(), "Gateway": net.gateway.to_string()})];
    if let Some(v6) = &net.ipv6 {
        config.push(json!({"Subnet": v6.subnet.to_string(), "Gateway": v6.gateway.to_string()}));
    }
    Ok(json!({
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": net.ipv6.is_some(),
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": config,
        },
        "Internal": false,
        "Attachable": false,
        "Containers": containers,
        "Options": options,
        "Labels": {},
    }))
}
