package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/keystore"
)

// kidList is a repeatable --kid flag.
type kidList []string

func (l *kidList) String() string { return strings.Join(*l, ",") }

func (l *kidList) Set(s string) error {
	id, err := keystore.ParseKeyID(s)
	if err != nil {
		return err
	}
	*l = append(*l, id.String())
	return nil
}

// contentList is a repeatable --content flag: content IDs as the store
// records them (keystore.ValidateAsset).
type contentList []string

func (l *contentList) String() string { return strings.Join(*l, ",") }

func (l *contentList) Set(s string) error {
	if err := keystore.ValidateAsset(s); err != nil {
		return err
	}
	*l = append(*l, s)
	return nil
}

// tokenMint: kdctl token mint --signing-key FILE [--cert FILE] --issuer I
// --audience A [--kid KID]... [--content ID]... [--ttl 1h] [--subject S]
func tokenMint(fs *flag.FlagSet) runner {
	keyFile := fs.String("signing-key", "", "PEM `file` of the P-256 private key that signs the token (required)")
	certFile := fs.String("cert", "", "the signing certificate (a PEM `file`); its thumbprint goes into the token's x5t header")
	issuer := fs.String("issuer", "", "the token's iss, its `issuer` (required)")
	audience := fs.String("audience", "", "the token's aud, its `audience` (required)")
	subject := fs.String("subject", "", "the token's sub, its `subject`")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	var kids kidList
	fs.Var(&kids, "kid", "a `KID` the token grants (repeatable)")
	var contents contentList
	fs.Var(&contents, "content", "a content `ID` whose keys the token grants, every key recorded under it, rotating ones included (the content_ids claim; repeatable)")
	return func(e *env, _ []string) error {
		switch {
		case *keyFile == "":
			return usageError("token mint: --signing-key is required")
		case *issuer == "":
			return usageError("token mint: --issuer is required")
		case *audience == "":
			return usageError("token mint: --audience is required")
		case *ttl <= 0:
			return usageError("token mint: --ttl must be positive")
		case len(contents) > auth.MaxContentIDs:
			return usageError("token mint: at most %d --content", auth.MaxContentIDs)
		}
		signer, err := auth.LoadSigner(*keyFile, *certFile)
		if err != nil {
			return refused(err)
		}
		if len(kids) == 0 && len(contents) == 0 {
			fmt.Fprintln(e.stderr, "kdctl: warning: the token names no key (--kid) and no content (--content); it grants nothing unless the server accepts unbound tokens")
		}
		now := time.Now().UTC().Truncate(time.Second)
		tok, err := signer.Sign(auth.TokenClaims{
			Issuer:     *issuer,
			Audience:   *audience,
			Subject:    *subject,
			KeyIDs:     kids,
			ContentIDs: contents,
			IssuedAt:   now,
			NotBefore:  now,
			ExpiresAt:  now.Add(*ttl),
		})
		if err != nil {
			return refused(err)
		}
		_, err = fmt.Fprintln(e.stdout, tok)
		return err
	}
}
