package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/keystore"
)

// kekGenerate: kdctl kek generate [--id ID]
func kekGenerate(fs *flag.FlagSet) runner {
	id := fs.String("id", "kek-"+time.Now().UTC().Format("20060102"), "the KEK's `ID`")
	return func(e *env, _ []string) error {
		line, err := keystore.GenerateKEKLine(rand.Reader, *id)
		if err != nil {
			return usageError("kek generate: %v", err)
		}
		fmt.Fprintln(e.stderr, "kdctl: put this line first in the KEK file to seal new keys with it; keep the older lines")
		_, err = fmt.Fprintln(e.stdout, line)
		return err
	}
}

// adminkeyGenerate: kdctl adminkey generate --name N --role R [--content P]...
func adminkeyGenerate(fs *flag.FlagSet) runner {
	name := fs.String("name", "", "the credential's `name`, as the audit log records it (required)")
	roleName := fs.String("role", "", "the `role`: reader, writer, exporter, admin or packager (required)")
	var contents stringList
	fs.Var(&contents, "content", "packager only: a content ID `pattern` the credential is limited to ('*' matches any run of characters; repeatable)")
	return func(e *env, _ []string) error {
		if *name == "" || *roleName == "" {
			return usageError("adminkey generate: --name and --role are required")
		}
		role, err := credentials.ParseRole(*roleName)
		if err != nil {
			return usageError("adminkey generate: %v", err)
		}
		secret, err := credentials.GenerateSecret(rand.Reader)
		if err != nil {
			return err
		}
		var line string
		switch {
		case len(contents) > 0 && role != credentials.RolePackager:
			return usageError("adminkey generate: --content limits packager credentials only")
		case role == credentials.RolePackager:
			line, err = credentials.PackagerLine(*name, secret, contents)
		default:
			line, err = credentials.Line(*name, role, secret)
		}
		if err != nil {
			return usageError("adminkey generate: %v", err)
		}
		fmt.Fprintln(e.stderr, "kdctl: line 1 is the secret: give it to the client and do not store it elsewhere; line 2 goes into the server's credentials file (reload with SIGHUP)")
		_, err = fmt.Fprintf(e.stdout, "%s\n%s\n", secret, line)
		return err
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
