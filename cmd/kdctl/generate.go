package main

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/keystore"
)

// kekGenerate: kdctl kek generate [--id ID]
func (e *env) kekGenerate(args []string) error {
	fs := e.subFlags("kek generate", "[--id ID]")
	id := fs.String("id", "kek-"+time.Now().UTC().Format("20060102"), "the KEK's ID")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	line, err := keystore.GenerateKEKLine(rand.Reader, *id)
	if err != nil {
		return usageError("kek generate: %v", err)
	}
	fmt.Fprintln(e.stderr, "kdctl: put this line first in the KEK file to seal new keys with it; keep the older lines")
	_, err = fmt.Fprintln(e.stdout, line)
	return err
}

// adminkeyGenerate: kdctl adminkey generate --name N --role R [--content P]...
func (e *env) adminkeyGenerate(args []string) error {
	fs := e.subFlags("adminkey generate", "--name N --role reader|writer|exporter|admin|packager [--content PATTERN]...")
	name := fs.String("name", "", "the credential's name, as the audit log records it (required)")
	roleName := fs.String("role", "", "reader, writer, exporter, admin or packager (required)")
	var contents stringList
	fs.Var(&contents, "content", "packager only: a content ID pattern the credential is limited to ('*' matches any run of characters; repeatable)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
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

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
