package main

import (
	"crypto/rand"
	"fmt"
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

// adminkeyGenerate: kdctl adminkey generate --name N --role R
func (e *env) adminkeyGenerate(args []string) error {
	fs := e.subFlags("adminkey generate", "--name N --role reader|writer|exporter|admin")
	name := fs.String("name", "", "the credential's name, as the audit log records it (required)")
	roleName := fs.String("role", "", "reader, writer, exporter or admin (required)")
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
	line, err := credentials.Line(*name, role, secret)
	if err != nil {
		return usageError("adminkey generate: %v", err)
	}
	fmt.Fprintln(e.stderr, "kdctl: line 1 is the secret: give it to the client and do not store it elsewhere; line 2 goes into the server's credentials file (reload with SIGHUP)")
	_, err = fmt.Fprintf(e.stdout, "%s\n%s\n", secret, line)
	return err
}
