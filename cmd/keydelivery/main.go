// Command keydelivery is the key-delivery server: it serves content keys to
// video players that present a valid ES256 token, on a public delivery
// plane, with an admin plane on its own (loopback by default) listener.
// Run with --help for the flags; every flag can also be set from the
// environment as KD_<FLAG> (e.g. KD_STORE for --store).
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr, os.Environ()...); err != nil {
		fmt.Fprintf(os.Stderr, "keydelivery: %v\n", err)
		os.Exit(1)
	}
}
