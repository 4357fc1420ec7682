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
)

// keysCreate: kdctl keys create [--id KID] [--name N] [--type T]
// [--key-file F | --key-seed-id ID] [--iv B64] [--quiet]
func keysCreate(fs *flag.FlagSet) runner {
	id := fs.String("id", "", "the key's `KID` (default: a random UUID chosen by the server)")
	name := fs.String("name", "", "the key's `name`")
	typ := fs.String("type", "", "content key `type`, number or name (default 4, EnvelopeEncryption)")
	keyFile := fs.String("key-file", "", "`file` holding the 16-byte key: raw, 32 hex digits or base64 (default: random)")
	keySeedID := fs.String("key-seed-id", "", "derive the key from the stored key seed `ID` and the KID (see keyseeds create)")
	iv := fs.String("iv", "", "16-byte IV in standard `base64`")
	quiet := fs.Bool("quiet", false, "print only the KID")
	return func(e *env, _ []string) error {
		if *keyFile != "" && *keySeedID != "" {
			return usageError("keys create: give --key-file or --key-seed-id, not both")
		}
		body := map[string]string{}
		if *keySeedID != "" {
			sid, err := keystore.ParseKeyID(*keySeedID)
			if err != nil {
				return usageError("--key-seed-id: %v", err)
			}
			body["keySeedId"] = sid.String()
		}
		if *id != "" {
			kid, err := keystore.ParseKeyID(*id)
			if err != nil {
				return usageError("--id: %v", err)
			}
			body["id"] = kid.String()
		}
		if *name != "" {
			body["name"] = *name
		}
		if *typ != "" {
			t, err := keystore.ParseContentKeyType(*typ)
			if err != nil {
				return usageError("--type: %v", err)
			}
			body["type"] = t.String()
		}
		if *iv != "" {
			body["iv"] = *iv
		}
		if *keyFile != "" {
			key, err := readKeyFile(*keyFile)
			if err != nil {
				return refused(err)
			}
			body["key"] = base64.StdEncoding.EncodeToString(key[:])
			clear(key[:])
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		b, err := c.do(e.ctx, http.MethodPost, body, "api", "keys")
		if err != nil {
			return err
		}
		if !*quiet {
			return printJSON(e.stdout, b)
		}
		var m struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.ID == "" {
			return &exitError{code: exitUnavailable, err: fmt.Errorf("the server's answer has no key id: %q", excerpt(b, 120))}
		}
		_, err = fmt.Fprintln(e.stdout, m.ID)
		return err
	}
}

// readKeyFile reads a 16-byte content key from a file holding exactly 16
// raw bytes, or 32 hex digits, or 16 bytes in standard base64 (surrounding
// white space ignored). Errors never quote the file's content.
func readKeyFile(path string) ([16]byte, error) {
	var key [16]byte
	b, err := readSmallFile(path, 1024)
	if err != nil {
		return key, fmt.Errorf("key file: %w", err)
	}
	defer clear(b)
	if len(b) == len(key) {
		copy(key[:], b)
		return key, nil
	}
	t := bytes.TrimSpace(b)
	if len(t) == 2*len(key) {
		if _, err := hex.Decode(key[:], t); err == nil {
			return key, nil
		}
	}
	var buf [18]byte
	if len(t) == base64.StdEncoding.EncodedLen(len(key)) {
		n, err := base64.StdEncoding.Strict().Decode(buf[:], t)
		if err == nil && n == len(key) {
			copy(key[:], buf[:n])
			clear(buf[:])
			return key, nil
		}
	}
	return key, fmt.Errorf("key file %s: want exactly 16 raw bytes, 32 hex digits or 16 bytes in standard base64", path)
}

// keysGet: kdctl keys get KID
func keysGet(*flag.FlagSet) runner {
	return func(e *env, args []string) error {
		kid, err := oneKID("keys get", args)
		if err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		b, err := c.do(e.ctx, http.MethodGet, nil, "api", "keys", kid.String())
		if err != nil {
			return err
		}
		return printJSON(e.stdout, b)
	}
}

// oneKID parses the single positional argument of the command name, a KID
// in any form the server accepts.
func oneKID(name string, args []string) (keystore.KeyID, error) {
	if len(args) != 1 {
		return keystore.KeyID{}, usageError("%s: want exactly one KID", name)
	}
	kid, err := keystore.ParseKeyID(args[0])
	if err != nil {
		return keystore.KeyID{}, usageError("%s: %v", name, err)
	}
	return kid, nil
}
