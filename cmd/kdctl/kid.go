package main

import (
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"strings"

	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// kidForms: kdctl kid KID [--playready]
//
// It prints one KID in every form the systems around keydelivery use, one
// "form value" line each, so a KID from a ClearKey request, a PlayReady
// header, an AMS export or a packager's log can be matched with the others.
func kidForms(fs *flag.FlagSet) runner {
	pr := fs.Bool("playready", false, "read a base64 KID as a PlayReady GUID (little-endian bytes, as in a PlayReady header) instead of in UUID byte order")
	return func(e *env, args []string) error {
		if len(args) != 1 {
			return usageError("kid: want exactly one KID")
		}
		id, err := parseAnyKID(args[0], *pr)
		if err != nil {
			return usageError("kid: %v", err)
		}
		guid := playready.GUID(id)
		_, err = fmt.Fprintf(e.stdout, "uuid       %s\nhex        %s\nbase64url  %s\nams        %s%s\nplayready  %s\n",
			id, hex.EncodeToString(id[:]), base64.RawURLEncoding.EncodeToString(id[:]),
			keystore.AMSKeyIDPrefix, id, base64.StdEncoding.EncodeToString(guid[:]))
		return err
	}
}

// parseAnyKID reads a KID in any form the server accepts, or as base64 or
// base64url of its 16 bytes (padded or not): in UUID byte order, the
// ClearKey form, or with playready, as a PlayReady GUID.
func parseAnyKID(s string, playreadyOrder bool) (keystore.KeyID, error) {
	if id, err := keystore.ParseKeyID(s); err == nil {
		if playreadyOrder {
			return keystore.KeyID{}, fmt.Errorf("%q is not base64: --playready reads a base64 KID", s)
		}
		return id, nil
	}
	raw := strings.TrimRight(s, "=")
	var b []byte
	var err error
	if strings.ContainsAny(raw, "+/") {
		b, err = base64.RawStdEncoding.DecodeString(raw)
	} else {
		b, err = base64.RawURLEncoding.DecodeString(raw)
	}
	if err != nil || len(b) != 16 {
		_, perr := keystore.ParseKeyID(s)
		return keystore.KeyID{}, fmt.Errorf("%w, nor 16 bytes in base64 or base64url", perr)
	}
	id := keystore.KeyID(b)
	if playreadyOrder {
		id = playready.GUID(id)
	}
	return id, nil
}
