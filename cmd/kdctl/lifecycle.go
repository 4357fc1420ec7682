package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/keydelivery/keydelivery/keystore"
)

// keysList: kdctl keys list [--limit N] [--cursor C] [--all] [--asset ID]
//
// Each key's metadata, as the server sends it, is printed compact on its
// own line (JSON lines), so a script can read the output line by line.
func keysList(fs *flag.FlagSet) runner {
	limit := fs.Int("limit", 0, "keys per page, 1 to 1000 (default: the server's, 100)")
	cursor := fs.String("cursor", "", "start at this `cursor`, the nextCursor of an earlier listing")
	all := fs.Bool("all", false, "follow nextCursor to the last page")
	asset := fs.String("asset", "", "list only the keys of this asset `ID`")
	return func(e *env, _ []string) error {
		if *limit < 0 {
			return usageError("keys list: --limit must be positive")
		}
		path := []string{"api", "keys"}
		if *asset != "" {
			if err := keystore.ValidateAsset(*asset); err != nil {
				return usageError("keys list: --asset: %v", err)
			}
			path = []string{"api", "assets", *asset, "keys"}
		}
		q := url.Values{}
		if *limit > 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		var seen []string
		next := *cursor
		for {
			if next != "" {
				q.Set("cursor", next)
			}
			a, err := c.send(e.ctx, request{method: http.MethodGet, path: path, query: q})
			if err != nil {
				return err
			}
			var page struct {
				Keys       []json.RawMessage `json:"keys"`
				NextCursor string            `json:"nextCursor"`
			}
			if json.Unmarshal(a.body, &page) != nil || page.Keys == nil {
				return notAPI("a page of keys", a.body)
			}
			var out bytes.Buffer
			for _, k := range page.Keys {
				if err := json.Compact(&out, k); err != nil {
					return notAPI("a page of keys", a.body)
				}
				out.WriteByte('\n')
			}
			if _, err := e.stdout.Write(out.Bytes()); err != nil {
				return err
			}
			if page.NextCursor == "" {
				return nil
			}
			if !*all {
				fmt.Fprintf(e.stderr, "kdctl: there may be more keys: continue with --cursor %s, or list them all with --all\n", page.NextCursor)
				return nil
			}
			if slices.Contains(seen, page.NextCursor) {
				return &exitError{code: exitUnavailable, err: fmt.Errorf("the server sent cursor %s twice; stopping", page.NextCursor)}
			}
			seen = append(seen, page.NextCursor)
			next = page.NextCursor
		}
	}
}

// keysDelete: kdctl keys delete KID
func keysDelete(*flag.FlagSet) runner {
	return func(e *env, args []string) error {
		kid, err := oneKID("keys delete", args)
		if err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		b, err := c.do(e.ctx, http.MethodDelete, nil, "api", "keys", kid.String())
		if err != nil {
			return err
		}
		return printJSON(e.stdout, b)
	}
}

// keysRestore: kdctl keys restore KID
func keysRestore(*flag.FlagSet) runner {
	return func(e *env, args []string) error {
		kid, err := oneKID("keys restore", args)
		if err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		// A restore whose answer was lost is sent again; not_deleted then
		// means that the earlier attempt restored it.
		a, err := c.send(e.ctx, request{method: http.MethodPost, path: []string{"api", "keys", kid.String(), "restore"},
			doneIfRepeated: []string{"not_deleted"}})
		if err != nil {
			return err
		}
		b := a.body
		if a.repeated { // show the key as it is
			if b, err = c.do(e.ctx, http.MethodGet, nil, "api", "keys", kid.String()); err != nil {
				return err
			}
		}
		return printJSON(e.stdout, b)
	}
}

// keysPurge: kdctl keys purge KID
func keysPurge(*flag.FlagSet) runner {
	return func(e *env, args []string) error {
		kid, err := oneKID("keys purge", args)
		if err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		// unknown_key answered to a repeated purge: the earlier attempt
		// purged it.
		_, err = c.send(e.ctx, request{method: http.MethodDelete, path: []string{"api", "keys", kid.String()}, query: url.Values{"purge": {"true"}},
			doneIfRepeated: []string{"unknown_key"}})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "kdctl: purged %s: its key material is destroyed\n", kid)
		return nil
	}
}

// deliveryTypes are the values of delivery-url's --type.
var deliveryTypes = []string{"envelope", "clearkey", "playready", "widevine", "fairplay"}

// keysDeliveryURL: kdctl keys delivery-url KID [--type T]
func keysDeliveryURL(fs *flag.FlagSet) runner {
	typ := fs.String("type", "envelope", "delivery `type`: "+strings.Join(deliveryTypes, ", "))
	return func(e *env, args []string) error {
		kid, err := oneKID("keys delivery-url", args)
		if err != nil {
			return err
		}
		if !slices.Contains(deliveryTypes, *typ) {
			return usageError("keys delivery-url: --type must be one of %s", strings.Join(deliveryTypes, ", "))
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		u, err := e.deliveryURL(c, kid, *typ)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(e.stdout, u)
		return err
	}
}

// deliveryURL asks the server for the URL a player uses for kid.
func (e *env) deliveryURL(c *client, kid keystore.KeyID, typ string) (string, error) {
	a, err := c.send(e.ctx, request{method: http.MethodGet, path: []string{"api", "keys", kid.String(), "delivery-url"}, query: url.Values{"type": {typ}}})
	if err != nil {
		return "", err
	}
	var m struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(a.body, &m) != nil || m.URL == "" {
		return "", notAPI("a delivery URL", a.body)
	}
	u, err := url.Parse(m.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(m.URL, "\r\n") {
		return "", notAPI("an http(s) delivery URL", a.body)
	}
	return m.URL, nil
}
