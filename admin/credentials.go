package admin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// Role is what an admin credential may do.
type Role string

// The roles, from the credentials file's ROLE column.
const (
	// RoleReader lists keys and reads their metadata.
	RoleReader Role = "reader"
	// RoleWriter is RoleReader plus create, import, delete and restore.
	RoleWriter Role = "writer"
	// RoleExporter is RoleReader plus export of key material.
	RoleExporter Role = "exporter"
	// RoleAdmin may do everything, including purge.
	RoleAdmin Role = "admin"
)

// ParseRole accepts a role name in any case.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(s))
	if r.permissions() == 0 {
		return "", fmt.Errorf("admin: unknown role %q (want reader, writer, exporter or admin)", s)
	}
	return r, nil
}

// permission is a set of things a role may do.
type permission uint8

const (
	permRead permission = 1 << iota
	permWrite
	permExport
	permPurge
)

func (r Role) permissions() permission {
	switch r {
	case RoleReader:
		return permRead
	case RoleWriter:
		return permRead | permWrite
	case RoleExporter:
		return permRead | permExport
	case RoleAdmin:
		return permRead | permWrite | permExport | permPurge
	}
	return 0
}

// credential is one line of the credentials file.
type credential struct {
	name string
	role Role
	hash [sha256.Size]byte
}

// credentialSet is immutable once built.
type credentialSet struct {
	entries []credential
}

// Credentials is the set of admin credentials, read from a file of lines
//
//	NAME ROLE SHA256HEX
//
// where SHA256HEX is the SHA-256 of the secret in hex (any case; see
// [HashSecret]), ROLE is reader, writer, exporter or admin, and NAME (1 to 64
// letters, digits, '.', '_', '@' or '-') is what the audit log records.
// Blank lines and lines starting with '#' are ignored.
//
// The file holds only hashes, so reading it does not reveal a secret. The
// set is immutable and swapped whole on Reload (an atomic pointer), so
// checking a credential takes no lock. Credentials is safe for concurrent use.
type Credentials struct {
	path string
	set  atomic.Pointer[credentialSet]
	mu   sync.Mutex // serialises Reload
}

// LoadCredentials reads the credentials file at path.
func LoadCredentials(path string) (*Credentials, error) {
	set, err := readCredentials(path)
	if err != nil {
		return nil, err
	}
	c := &Credentials{path: path}
	c.set.Store(set)
	return c, nil
}

// ParseCredentials builds Credentials from the text of a credentials file,
// for a development server that generated its own secret and for tests.
// Such Credentials have no file: Reload fails.
func ParseCredentials(text []byte) (*Credentials, error) {
	set, err := parseCredentials(text)
	if err != nil {
		return nil, err
	}
	c := &Credentials{}
	c.set.Store(set)
	return c, nil
}

// Reload reads the file again and, if it parses, replaces the set. On any
// error the previous set stays in force.
func (c *Credentials) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.path == "" {
		return errors.New("admin: reload credentials: not loaded from a file")
	}
	set, err := readCredentials(c.path)
	if err != nil {
		return err
	}
	c.set.Store(set)
	return nil
}

// Len returns the number of credentials in force.
func (c *Credentials) Len() int { return len(c.set.Load().entries) }

func readCredentials(path string) (*credentialSet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin: read credentials file: %w", err)
	}
	set, err := parseCredentials(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return set, nil
}

func parseCredentials(text []byte) (*credentialSet, error) {
	set := &credentialSet{}
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 3 {
			return nil, fmt.Errorf("admin: credentials line %d: want \"NAME ROLE SHA256HEX\"", line)
		}
		if !validName(f[0]) {
			return nil, fmt.Errorf("admin: credentials line %d: name %q must be 1 to 64 letters, digits, '.', '_', '@' or '-'", line, f[0])
		}
		role, err := ParseRole(f[1])
		if err != nil {
			return nil, fmt.Errorf("admin: credentials line %d (%s): unknown role %q (want reader, writer, exporter or admin)", line, f[0], f[1])
		}
		var cr credential
		if len(f[2]) != 2*sha256.Size {
			return nil, fmt.Errorf("admin: credentials line %d (%s): want the SHA-256 of the secret as %d hex digits, got %d characters", line, f[0], 2*sha256.Size, len(f[2]))
		}
		if _, err := hex.Decode(cr.hash[:], []byte(f[2])); err != nil {
			return nil, fmt.Errorf("admin: credentials line %d (%s): the SHA-256 of the secret is not valid hex", line, f[0])
		}
		if prev, dup := names[f[0]]; dup {
			return nil, fmt.Errorf("admin: credentials line %d: name %q already used on line %d", line, f[0], prev)
		}
		// Two names for one secret would make the audit log's credential
		// name ambiguous.
		if prev, dup := hashes[cr.hash]; dup {
			return nil, fmt.Errorf("admin: credentials line %d (%s): same secret as line %d", line, f[0], prev)
		}
		names[f[0]], hashes[cr.hash] = line, line
		cr.name, cr.role = f[0], role
		set.entries = append(set.entries, cr)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("admin: credentials file: %w", err)
	}
	return set, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// match returns the credential whose hash is the SHA-256 of secret.
//
// Security invariant: the secret is hashed once and compared with every
// entry in constant time, with no early exit, so the time taken says
// neither whether a secret matched nor which entry did.
func (c *Credentials) match(secret string) (credential, bool) {
	if c == nil {
		return credential{}, false
	}
	sum := sha256.Sum256([]byte(secret))
	set := c.set.Load()
	idx, found := 0, 0
	for i := range set.entries {
		eq := subtle.ConstantTimeCompare(sum[:], set.entries[i].hash[:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found == 0 {
		return credential{}, false
	}
	return set.entries[idx], true
}

// HashSecret returns the SHA-256 of secret in lower-case hex: the
// SHA256HEX column of the credentials file.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretPrefix starts every secret GenerateSecret makes, so that a leaked
// admin secret is easy to recognise (and to scan for).
const SecretPrefix = "kda_"

// GenerateSecret returns a new admin secret: SecretPrefix followed by 32
// bytes from rand in unpadded base64url. Use crypto/rand.Reader.
func GenerateSecret(rand io.Reader) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("admin: generate secret: %w", err)
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// CredentialLine returns the credentials-file line for a credential named
// name with the given role and secret, after checking the name and role.
func CredentialLine(name string, role Role, secret string) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("admin: credential name %q must be 1 to 64 letters, digits, '.', '_', '@' or '-'", name)
	}
	if role.permissions() == 0 {
		return "", fmt.Errorf("admin: unknown role %q (want reader, writer, exporter or admin)", string(role))
	}
	if secret == "" {
		return "", errors.New("admin: empty secret")
	}
	return name + " " + string(role) + " " + HashSecret(secret), nil
}
