package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"

	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// keySeedSize is the size of a PlayReady key seed.
const keySeedSize = playready.SeedSize

// keyseedsCreate: kdctl keyseeds create [--id ID] [--name N] [--seed-file F]
func keyseedsCreate(fs *flag.FlagSet) runner {
	id := fs.String("id", "", "the key seed's `ID`, a UUID (default: a random one chosen by the server)")
	name := fs.String("name", "", "the key seed's `name`")
	seedFile := fs.String("seed-file", "", "`file` holding the 30-byte seed: raw, 60 hex digits or base64 (default: a random seed made by the server)")
	return func(e *env, _ []string) error {
		body := map[string]string{}
		if *id != "" {
			sid, err := keystore.ParseKeyID(*id)
			if err != nil {
				return usageError("--id: %v", err)
			}
			body["id"] = sid.String()
		}
		if *name != "" {
			body["name"] = *name
		}
		if *seedFile != "" {
			seed, err := readSeedFile(*seedFile)
			if err != nil {
				return refused(err)
			}
			body["seed"] = base64.StdEncoding.EncodeToString(seed)
			clear(seed)
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		// A random seed, or one under a random ID, cannot be told apart
		// from another when repeated: that create is sent once (again only
		// if it never reached the server). The same seed under the same
		// ID again answers "unchanged".
		enc, err := json.Marshal(body)
		clear(body)
		if err != nil {
			return err
		}
		a, err := c.send(e.ctx, request{method: http.MethodPost, path: []string{"api", "keyseeds"}, body: enc, ctype: mediaJSON,
			once: *seedFile == "" || *id == ""})
		clear(enc)
		if err != nil {
			return err
		}
		return printJSON(e.stdout, a.body)
	}
}

// readSeedFile reads a 30-byte key seed from a file holding exactly 30 raw
// bytes, or 60 hex digits, or 30 bytes in standard base64 (surrounding
// white space ignored). Errors never quote the file's content.
func readSeedFile(path string) ([]byte, error) {
	b, err := readSmallFile(path, 1024)
	if err != nil {
		return nil, fmt.Errorf("seed file: %w", err)
	}
	defer clear(b)
	seed := make([]byte, keySeedSize)
	if len(b) == keySeedSize {
		copy(seed, b)
		return seed, nil
	}
	t := bytes.TrimSpace(b)
	if len(t) == 2*keySeedSize {
		if _, err := hex.Decode(seed, t); err == nil {
			return seed, nil
		}
	}
	if len(t) == base64.StdEncoding.EncodedLen(keySeedSize) {
		if n, err := base64.StdEncoding.Strict().Decode(seed, t); err == nil && n == keySeedSize {
			return seed, nil
		}
	}
	clear(seed)
	return nil, fmt.Errorf("seed file %s: want exactly %d raw bytes, %d hex digits or %d bytes in standard base64", path, keySeedSize, 2*keySeedSize, keySeedSize)
}

// keyseedsList: kdctl keyseeds list, one compact JSON object per line.
func keyseedsList(*flag.FlagSet) runner {
	return func(e *env, _ []string) error {
		c, err := e.client()
		if err != nil {
			return err
		}
		b, err := c.do(e.ctx, http.MethodGet, nil, "api", "keyseeds")
		if err != nil {
			return err
		}
		var list struct {
			KeySeeds []json.RawMessage `json:"keySeeds"`
		}
		if json.Unmarshal(b, &list) != nil || list.KeySeeds == nil {
			return notAPI("a list of key seeds", b)
		}
		var out bytes.Buffer
		for _, s := range list.KeySeeds {
			if err := json.Compact(&out, s); err != nil {
				return notAPI("a list of key seeds", b)
			}
			out.WriteByte('\n')
		}
		_, err = e.stdout.Write(out.Bytes())
		return err
	}
}
