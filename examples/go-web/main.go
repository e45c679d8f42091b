// The tutorial's web demo: answers every request on :8081 with its name.
//
// Usage: web NAME
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	name := "web"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	fmt.Printf("%s listen :8081\n", name)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n", name)
	})
	log.Fatal(http.ListenAndServe(":8081", nil))
}
