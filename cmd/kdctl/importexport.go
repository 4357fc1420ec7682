package main

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/keystore"
)

// maxImportFile bounds what kdctl reads for one import. The server has its
// own, usually smaller, limit (--max-import-bytes, default 64 MiB) and
// answers 413 above it.
const maxImportFile = 256 << 20

// keysImport: kdctl keys import FILE|- [--format json|cpix] [--type T]
func keysImport(fs *flag.FlagSet) runner {
	format := fs.String("format", "", "the `format`, json or cpix (default: from the extension .json, .xml or .cpix, else from the first byte: '[' JSON, '<' CPIX)")
	typ := fs.String("type", "", "content key `type` of every key imported, number or name (default 4, EnvelopeEncryption)")
	return func(e *env, pos []string) error {
		if len(pos) != 1 {
			return usageError("keys import: want one FILE, or - for standard input")
		}
		if *format != "" && *format != "json" && *format != "cpix" {
			return usageError("keys import: --format must be json or cpix")
		}
		q := url.Values{}
		if *typ != "" {
			t, err := keystore.ParseContentKeyType(*typ)
			if err != nil {
				return usageError("--type: %v", err)
			}
			q.Set("type", t.String())
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		b, err := e.readInput(pos[0], maxImportFile)
		if err != nil {
			return refused(fmt.Errorf("import file: %w", err))
		}
		defer clear(b)
		ctype, err := importMediaType(*format, pos[0], b)
		if err != nil {
			return refused(err)
		}
		a, err := c.send(e.ctx, request{method: http.MethodPost, path: []string{"api", "keys", "import"}, query: q, body: b, ctype: ctype})
		var se *serverError
		if errors.As(err, &se) && len(se.p.Results) > 0 {
			// A conflict: the other keys were imported; show every outcome.
			if perr := printJSON(e.stdout, se.p.Results); perr != nil {
				return perr
			}
		}
		if err != nil {
			return err
		}
		var results []importResult
		if json.Unmarshal(a.body, &results) != nil {
			return notAPI("an import answer", a.body)
		}
		counts := map[string]int{}
		generated, found := 0, 0
		for _, r := range results {
			counts[r.Status]++
			if r.IDGenerated {
				generated++
				if r.Status == "unchanged" {
					found++
				}
			}
		}
		if err := printJSON(e.stdout, a.body); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "kdctl: imported %s: %d created, %d unchanged\n", count(len(results), "key", "keys"), counts["created"], counts["unchanged"])
		if generated > 0 {
			fmt.Fprintf(e.stderr, "kdctl: %s had no Id: the server chose %s (IdGenerated); %d %s already stored by an earlier import without Id, under the KID it answers\n",
				count(generated, "entry", "entries"), plural(generated, "its KID", "their KIDs"), found, plural(found, "was", "were"))
		}
		return nil
	}
}

// importMediaType is the Content-Type of an import: from --format, else
// from the file name's extension, else from the first byte that is not
// white space (after a UTF-8 byte order mark): '[' is JSON, '<' is CPIX.
func importMediaType(format, name string, b []byte) (string, error) {
	switch format {
	case "json":
		return mediaJSON, nil
	case "cpix":
		return mediaCPIX, nil
	}
	if name != "-" {
		switch strings.ToLower(filepath.Ext(name)) {
		case ".json":
			return mediaJSON, nil
		case ".xml", ".cpix":
			return mediaCPIX, nil
		}
	}
	t := bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case len(t) == 0:
		return "", fmt.Errorf("import file %s is empty", name)
	case t[0] == '[':
		return mediaJSON, nil
	case t[0] == '<':
		return mediaCPIX, nil
	}
	return "", fmt.Errorf("cannot tell whether %s is JSON or CPIX: pass --format json or --format cpix", name)
}

// keysExport: kdctl keys export KID... [--out FILE]
func keysExport(fs *flag.FlagSet) runner {
	out := fs.String("out", "", "write the CPIX document to this new `file`, mode 0600, instead of standard output (an existing file is never overwritten)")
	var recipients stringList
	fs.Var(&recipients, "recipient-cert", "encrypt the keys to this recipient's certificate `file` (PEM or DER, RSA of at least 2048 bits; repeatable): no key is then written in the clear")
	return func(e *env, pos []string) error {
		if len(pos) == 0 {
			return usageError("keys export: want at least one KID")
		}
		kids := make([]string, len(pos))
		for i, p := range pos {
			id, err := keystore.ParseKeyID(p)
			if err != nil {
				return usageError("keys export: %v", err)
			}
			kids[i] = id.String()
		}
		if *out != "" {
			if err := refuseExisting(*out); err != nil {
				return refused(err)
			}
		}
		var certs []string
		for _, f := range recipients {
			der, err := readCertificate(f)
			if err != nil {
				return refused(fmt.Errorf("--recipient-cert %s: %w", f, err))
			}
			certs = append(certs, base64.StdEncoding.EncodeToString(der))
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		if certs != nil {
			return e.exportEncrypted(c, kids, certs, *out)
		}
		b, doc, err := e.exportCPIX(c, kids)
		if err != nil {
			return err
		}
		defer clear(b)
		defer clearDocument(doc)
		where := "standard output"
		if *out == "" {
			if _, err := e.stdout.Write(b); err != nil {
				return err
			}
		} else {
			if err := createExclusive(*out, b); err != nil {
				return refused(err)
			}
			where = *out
		}
		fmt.Fprintf(e.stderr, "kdctl: warning: %s holds %s in the clear (CPIX PlainValue): whoever reads it can decrypt the content; keep it as secret as the keys and delete it once used\n", where, count(len(doc.Keys), "content key", "content keys"))
		return nil
	}
}

// exportCPIX asks the server for the keys as a CPIX document (role
// exporter) and checks that the answer is a CPIX document holding exactly
// those keys. It returns the document as sent and as read; the caller
// clears both.
func (e *env) exportCPIX(c *client, kids []string) ([]byte, *cpix.Document, error) {
	body, err := json.Marshal(map[string][]string{"kids": kids})
	if err != nil {
		return nil, nil, err
	}
	a, err := c.send(e.ctx, request{method: http.MethodPost, path: []string{"api", "keys", "export"}, body: body, ctype: mediaJSON, accept: mediaCPIX})
	if err != nil {
		return nil, nil, err
	}
	// Never quote this answer in an error: it may hold key material.
	if a.ctype != mediaCPIX && a.ctype != "application/xml" {
		clear(a.body)
		return nil, nil, &exitError{code: exitUnavailable, err: fmt.Errorf("the server's export answer is %q, not a CPIX document (is --server right?)", a.ctype)}
	}
	doc, err := cpix.Read(bytes.NewReader(a.body), int64(len(a.body))+1)
	if err != nil {
		clear(a.body)
		return nil, nil, &exitError{code: exitUnavailable, err: fmt.Errorf("the server's export answer is not a CPIX document kdctl can read: %v", err)}
	}
	want := map[[16]byte]bool{}
	for _, k := range kids {
		id, _ := keystore.ParseKeyID(k)
		want[id] = true
	}
	got := map[[16]byte]bool{}
	for _, k := range doc.Keys {
		got[k.KID] = true
	}
	if len(got) != len(want) || len(doc.Keys) != len(want) {
		clear(a.body)
		clearDocument(doc)
		return nil, nil, &exitError{code: exitUnavailable, err: fmt.Errorf("the server exported %s, want %d", count(len(doc.Keys), "key", "keys"), len(want))}
	}
	for id := range want {
		if !got[id] {
			clear(a.body)
			clearDocument(doc)
			return nil, nil, &exitError{code: exitUnavailable, err: fmt.Errorf("the server's export lacks %s", keystore.KeyID(id))}
		}
	}
	return a.body, doc, nil
}

// clearDocument overwrites the key material of doc (best effort: Go may
// have copied it).
func clearDocument(doc *cpix.Document) {
	if doc == nil {
		return
	}
	for _, k := range doc.Keys {
		clear(k.Value)
	}
}

// importResult is one entry of the import answer, as kdctl reads it.
type importResult struct {
	ID          string `json:"Id"`
	Status      string `json:"Status"`
	IDGenerated bool   `json:"IdGenerated"`
	Conflict    string `json:"Conflict"`
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// count is n and the noun in the number n needs: "1 key", "2 keys".
func count(n int, one, many string) string { return fmt.Sprintf("%d %s", n, plural(n, one, many)) }

// readCertificate reads a certificate file, PEM or DER, and returns the
// DER of its first certificate.
func readCertificate(path string) ([]byte, error) {
	b, err := readSmallFile(path, 1<<20)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("the PEM block is %s, want CERTIFICATE", blk.Type)
		}
		b = blk.Bytes
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return nil, errors.New("not an X.509 certificate")
	}
	return b, nil
}

// exportEncrypted asks for the keys encrypted to the recipients and writes
// the CPIX document as it came: kdctl cannot read the keys in it.
func (e *env) exportEncrypted(c *client, kids, certs []string, out string) error {
	body, err := json.Marshal(map[string][]string{"kids": kids, "recipients": certs})
	if err != nil {
		return err
	}
	a, err := c.send(e.ctx, request{method: http.MethodPost, path: []string{"api", "keys", "export"}, body: body, ctype: mediaJSON, accept: mediaCPIX})
	if err != nil {
		return err
	}
	root, err := cpix.ParseTree(bytes.NewReader(a.body), maxResponse)
	if err != nil || !root.Is(cpix.NamespaceCPIX, "CPIX") || bytes.Contains(a.body, []byte("PlainValue")) {
		return notAPI("an encrypted CPIX document", a.body)
	}
	if out == "" {
		_, err = e.stdout.Write(a.body)
		return err
	}
	if err := createExclusive(out, a.body); err != nil {
		return refused(err)
	}
	fmt.Fprintf(e.stderr, "kdctl: %s holds %s encrypted to %d recipient(s)\n", out, count(len(kids), "content key", "content keys"), len(certs))
	return nil
}
