//! The ADD result, built on the previous plugin's (`prevResult`) and shaped for the version the
//! runtime speaks: 0.3.x and 0.4.0 mark each address with `"version": "4"`, 1.0.0 and later do not.

use serde_json::{json, Value};

use super::conf::version_key;

/// What this plugin made for one attachment.
pub struct Made<'a> {
    pub bridge: &'a str,
    pub bridge_mac: &'a str,
    pub veth: &'a str,
    pub veth_mac: &'a str,
    pub ifname: &'a str,
    pub mac: &'a str,
    pub sandbox: &'a str,
    /// `10.77.0.2/16`.
    pub address: String,
    pub gateway: String,
    pub mtu: u32,
}

/// `prev` (or an empty result) with this plugin's interfaces, address and default route added.
pub fn add(prev: Option<&Value>, made: &Made, version: &str) -> Value {
    let mut r = prev.cloned().unwrap_or_else(|| json!({}));
    let interfaces = array(&mut r, "interfaces");
    let base = interfaces.len();
    interfaces.push(json!({ "name": made.bridge, "mac": made.bridge_mac }));
    interfaces.push(json!({ "name": made.veth, "mac": made.veth_mac }));
    interfaces.push(
        json!({ "name": made.ifname, "mac": made.mac, "sandbox": made.sandbox, "mtu": made.mtu }),
    );
    array(&mut r, "ips").push(json!({
        "address": made.address,
        "gateway": made.gateway,
        "interface": base + 2,
    }));
    array(&mut r, "routes").push(json!({ "dst": "0.0.0.0/0", "gw": made.gateway }));
    if r.get("dns").is_none() {
        r["dns"] = json!({});
    }
    shape(r, version)
}

/// A result (ours or a previous plugin's) in `version`'s shape.
pub fn shape(mut r: Value, version: &str) -> Value {
    r["cniVersion"] = version.into();
    let old = version_key(version) < (1, 0, 0);
    let mtu_known = version_key(version) >= (1, 1, 0);
    if let Some(ips) = r.get_mut("ips").and_then(Value::as_array_mut) {
        for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
            if old {
                let v6 = ip
                    .get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.contains(':'));
                ip.insert("version".into(), if v6 { "6" } else { "4" }.into());
            } else {
                ip.remove("version");
            }
        }
    }
    if !mtu_known {
        if let Some(ifs) = r.get_mut("interfaces").and_then(Value::as_array_mut) {
            for i in ifs.iter_mut().filter_map(Value::as_object_mut) {
                i.remove("mtu");
            }
        }
    }
    r
}

fn array<'a>(r: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !r.get(key).is_some_and(Value::is_array) {
        r[key] = json!([]);
    }
    r[key].as_array_mut().expect("just made an array")
}

/// The address a delegated IPAM plugin gave: its first IPv4 `ips[].address` and gateway.
pub fn ipam_address(r: &Value) -> Option<(String, Option<String>)> {
    r.get("ips")?
        .as_array()?
        .iter()
        .find(|ip| {
            ip.get("address")
                .and_then(Value::as_str)
                .is_some_and(|a| !a.contains(':'))
        })
        .map(|ip| {
            (
                ip["address"].as_str().unwrap_or_default().to_string(),
                ip.get("gateway")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made() -> Made<'static> {
        Made {
            bridge: "mb-cni0",
            bridge_mac: "02:42:0a:4d:00:01",
            veth: "mb-0123456789ab",
            veth_mac: "aa:bb:cc:dd:ee:ff",
            ifname: "eth0",
            mac: "02:42:0a:4d:00:02",
            sandbox: "/run/netns/x",
            address: "10.77.0.2/16".into(),
            gateway: "10.77.0.1".into(),
            mtu: 1500,
        }
    }

    #[test]
    fn appends_to_the_loopback_plugins_result() {
        let lo = json!({"cniVersion":"1.0.0","interfaces":[{"name":"lo","mac":"00:00:00:00:00:00","sandbox":"/run/netns/x"}],
                        "ips":[{"address":"127.0.0.1/8","interface":0}]});
        let r = add(Some(&lo), &made(), "1.0.0");
        assert_eq!(r["interfaces"].as_array().unwrap().len(), 4);
        assert_eq!(r["ips"][1]["interface"], 3);
        assert_eq!(r["interfaces"][3]["sandbox"], "/run/netns/x");
        assert!(r["ips"][1].get("version").is_none());
        assert!(
            r["interfaces"][3].get("mtu").is_none(),
            "mtu is a 1.1.0 field"
        );
    }

    #[test]
    fn old_versions_mark_address_families() {
        let r = add(None, &made(), "0.4.0");
        assert_eq!(r["cniVersion"], "0.4.0");
        assert_eq!(r["ips"][0]["version"], "4");
        assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0");
        let r = add(None, &made(), "1.1.0");
        assert_eq!(r["interfaces"][2]["mtu"], 1500);
    }

    #[test]
    fn reads_a_delegated_ipam_result() {
        let r = json!({"ips":[{"address":"fd00::5/64"},{"address":"10.9.0.5/24","gateway":"10.9.0.1"}]});
        assert_eq!(
            ipam_address(&r),
            Some(("10.9.0.5/24".to_string(), Some("10.9.0.1".to_string())))
        );
    }
}
