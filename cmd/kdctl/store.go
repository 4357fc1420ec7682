package main

import (
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/keystore/boltstore"
)

// storeCompact: kdctl store compact PATH. Offline: the server holds the
// file's lock while it runs, and compacting waits a second for it.
func storeCompact(*flag.FlagSet) runner {
	return func(e *env, args []string) error {
		if len(args) != 1 {
			return usageError("store compact: want exactly one bbolt store file (PATH or bolt:PATH)")
		}
		path := strings.TrimPrefix(args[0], "bolt:")
		before, after, err := boltstore.Compact(path, time.Second)
		if err != nil {
			return refused(err)
		}
		_, err = fmt.Fprintf(e.stdout, "%s compacted: %d bytes before, %d after; free pages, and the purged values they held, are gone\n", path, before, after)
		return err
	}
}

// storeAdopt: kdctl store adopt
func storeAdopt(*flag.FlagSet) runner {
	return func(e *env, _ []string) error {
		c, err := e.client()
		if err != nil {
			return err
		}
		b, err := c.do(e.ctx, http.MethodPost, nil, "api", "store", "adopt")
		if err != nil {
			return err
		}
		return printJSON(e.stdout, b)
	}
}
