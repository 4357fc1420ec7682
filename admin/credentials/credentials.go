// Package credentials reads and checks the admin credentials of keydelivery:
// the credentials file (lines NAME ROLE SHA256HEX, and for packagers an
// optional content=PATTERNS column), the roles and what each may do, and the
// secrets kdctl generates. It is a leaf package: it imports
// the standard library only, so the server's admin plane and kdctl share it
// without kdctl linking any HTTP framework.
//
// Trust boundary: the file holds only SHA-256 hashes of the secrets, so
// reading it reveals no secret; a secret is compared in constant time with
// every hash. Nothing here logs or returns a secret.
package credentials

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
	"unicode/utf8"
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
	// RolePackager may ask for content keys with SPEKE (POST /speke/v2),
	// and nothing else of the admin API: it is the credential a packager
	// or encoder holds. It may be limited to content IDs (see Set).
	RolePackager Role = "packager"
)

// roleNames lists the roles for messages.
const roleNames = "reader, writer, exporter, admin or packager"

// ParseRole accepts a role name in any case.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(s))
	if r.Permissions() == 0 {
		return "", fmt.Errorf("credentials: unknown role %q (want %s)", s, roleNames)
	}
	return r, nil
}

// Permission is a set of things a role may do; an admin operation names the
// one it needs.
type Permission uint8

// The permissions.
const (
	// Read: list keys and read their metadata (never key material).
	Read Permission = 1 << iota
	// Write: create, import, delete and restore keys.
	Write
	// Export: read key material (CPIX export).
	Export
	// Admin: destroy keys (purge) and store key seeds.
	Admin
	// SPEKE: ask for content keys as a packager (POST /speke/v2), which
	// creates the keys a request names and answers them.
	SPEKE
)

// Permissions returns what r may do; 0 for an unknown role.
func (r Role) Permissions() Permission {
	switch r {
	case RoleReader:
		return Read
	case RoleWriter:
		return Read | Write
	case RoleExporter:
		return Read | Export
	case RoleAdmin:
		return Read | Write | Export | Admin | SPEKE
	case RolePackager:
		return SPEKE
	}
	return 0
}

// Allows reports whether r holds every permission of p.
func (r Role) Allows(p Permission) bool { return p != 0 && r.Permissions()&p == p }

// Credential is one line of the credentials file: the name the audit log
// records and the role. The secret's hash is kept out of reach.
type Credential struct {
	Name string
	Role Role
	// Contents are the content ID patterns a packager credential is
	// limited to (the content= column); nil means any content.
	Contents []string
	hash     [sha256.Size]byte
}

// AllowsContent reports whether the credential may ask for the keys of the
// content id: it names no content patterns, or one of them matches id
// (see MatchContent).
func (c *Credential) AllowsContent(id string) bool {
	if c.Contents == nil {
		return true
	}
	for _, p := range c.Contents {
		if MatchContent(p, id) {
			return true
		}
	}
	return false
}

// MatchContent reports whether the content ID id matches pattern, in which
// '*' stands for any run of characters (none included) and every other
// character for itself: "live-*" matches "live-1" and "live-", and
// "vod/*/hd" matches "vod/2026/film/hd".
func MatchContent(pattern, id string) bool {
	head, rest, wild := strings.Cut(pattern, "*")
	if !wild {
		return pattern == id
	}
	if !strings.HasPrefix(id, head) {
		return false
	}
	id = id[len(head):]
	// rest is the pattern after the first '*': each literal piece between
	// stars must appear in order; the last must end id.
	pieces := strings.Split(rest, "*")
	last := pieces[len(pieces)-1]
	for _, piece := range pieces[:len(pieces)-1] {
		i := strings.Index(id, piece)
		if i < 0 {
			return false
		}
		id = id[i+len(piece):]
	}
	return len(id) >= len(last) && strings.HasSuffix(id, last)
}

// contentColumn starts the optional fourth column of a packager line.
const contentColumn = "content="

// maxContentPattern bounds one content ID pattern, in bytes (a content ID
// is stored as a key's asset ID, at most 256 bytes).
const maxContentPattern = 256

// parseContents reads the value of the content= column: comma-separated
// patterns of 1 to 256 printable characters without spaces.
func parseContents(v string) ([]string, error) {
	if v == "" {
		return nil, errors.New("content= names no pattern")
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p == "" || len(p) > maxContentPattern {
			return nil, fmt.Errorf("each content ID pattern must be 1 to %d characters (comma-separated, no spaces)", maxContentPattern)
		}
		for _, c := range p {
			if c <= ' ' || c == 0x7f || c == utf8.RuneError {
				return nil, errors.New("content ID patterns hold printable characters only, no spaces")
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// set is immutable once built.
type set struct {
	entries []Credential
}

// Set is the set of admin credentials, read from a file of lines
//
//	NAME ROLE SHA256HEX [content=PATTERN[,PATTERN...]]
//
// where SHA256HEX is the SHA-256 of the secret in hex (any case; see
// [HashSecret]), ROLE is reader, writer, exporter, admin or packager, and
// NAME (1 to 64 letters, digits, '.', '_', '@' or '-') is what the audit log
// records. Blank lines and lines starting with '#' are ignored.
//
// The fourth column is for packager lines only: it limits the credential to
// the content IDs that match one of the patterns ('*' matches any run of
// characters, see [MatchContent]), e.g. content=live-*,vod/2026/*. A
// packager line without it may ask for any content. Files without the
// column read as before.
//
// The file holds only hashes, so reading it does not reveal a secret. The
// entries are immutable and swapped whole on Reload (an atomic pointer), so
// checking a credential takes no lock. A Set is safe for concurrent use.
type Set struct {
	path string
	cur  atomic.Pointer[set]
	mu   sync.Mutex // serialises Reload
}

// Load reads the credentials file at path.
func Load(path string) (*Set, error) {
	entries, err := readFile(path)
	if err != nil {
		return nil, err
	}
	c := &Set{path: path}
	c.cur.Store(entries)
	return c, nil
}

// Parse builds a Set from the text of a credentials file, for a development
// server that generated its own secret and for tests. Such a Set has no
// file: Reload fails.
func Parse(text []byte) (*Set, error) {
	entries, err := parse(text)
	if err != nil {
		return nil, err
	}
	c := &Set{}
	c.cur.Store(entries)
	return c, nil
}

// Reload reads the file again and, if it parses, replaces the set. On any
// error the previous set stays in force.
func (c *Set) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.path == "" {
		return errors.New("credentials: reload: not loaded from a file")
	}
	entries, err := readFile(c.path)
	if err != nil {
		return err
	}
	c.cur.Store(entries)
	return nil
}

// Len returns the number of credentials in force (0 for a nil Set).
func (c *Set) Len() int {
	if c == nil {
		return 0
	}
	return len(c.cur.Load().entries)
}

// Roles counts the credentials in force by role (empty for a nil Set).
func (c *Set) Roles() map[Role]int {
	out := map[Role]int{}
	if c == nil {
		return out
	}
	for _, e := range c.cur.Load().entries {
		out[e.Role]++
	}
	return out
}

// RolesAllowing lists the roles whose permissions include perm, from the
// smallest (admin last): the roles an operation needing perm may be done
// with.
func RolesAllowing(perm Permission) []Role {
	var out []Role
	for _, r := range []Role{RoleReader, RoleWriter, RoleExporter, RolePackager, RoleAdmin} {
		if r.Permissions()&perm == perm {
			out = append(out, r)
		}
	}
	return out
}

func readFile(path string) (*set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: read file: %w", err)
	}
	entries, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return entries, nil
}

func parse(text []byte) (*set, error) {
	entries := &set{}
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
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("credentials: line %d: want \"NAME ROLE SHA256HEX\" (packagers: \"NAME packager SHA256HEX [content=PATTERN,...]\")", line)
		}
		if !validName(f[0]) {
			return nil, fmt.Errorf("credentials: line %d: name %q must be 1 to 64 letters, digits, '.', '_', '@' or '-'", line, f[0])
		}
		role, err := ParseRole(f[1])
		if err != nil {
			return nil, fmt.Errorf("credentials: line %d (%s): unknown role %q (want %s)", line, f[0], f[1], roleNames)
		}
		var cr Credential
		if len(f) == 4 {
			v, ok := strings.CutPrefix(f[3], contentColumn)
			switch {
			case !ok:
				return nil, fmt.Errorf("credentials: line %d (%s): the fourth column must be content=PATTERN[,PATTERN...]", line, f[0])
			case role != RolePackager:
				return nil, fmt.Errorf("credentials: line %d (%s): content= limits packager credentials only", line, f[0])
			}
			if cr.Contents, err = parseContents(v); err != nil {
				return nil, fmt.Errorf("credentials: line %d (%s): %w", line, f[0], err)
			}
		}
		if len(f[2]) != 2*sha256.Size {
			return nil, fmt.Errorf("credentials: line %d (%s): want the SHA-256 of the secret as %d hex digits, got %d characters", line, f[0], 2*sha256.Size, len(f[2]))
		}
		if _, err := hex.Decode(cr.hash[:], []byte(f[2])); err != nil {
			return nil, fmt.Errorf("credentials: line %d (%s): the SHA-256 of the secret is not valid hex", line, f[0])
		}
		if prev, dup := names[f[0]]; dup {
			return nil, fmt.Errorf("credentials: line %d: name %q already used on line %d", line, f[0], prev)
		}
		// Two names for one secret would make the audit log's credential
		// name ambiguous.
		if prev, dup := hashes[cr.hash]; dup {
			return nil, fmt.Errorf("credentials: line %d (%s): same secret as line %d", line, f[0], prev)
		}
		names[f[0]], hashes[cr.hash] = line, line
		cr.Name, cr.Role = f[0], role
		entries.entries = append(entries.entries, cr)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("credentials: file: %w", err)
	}
	return entries, nil
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

// Match returns the credential whose hash is the SHA-256 of secret. A nil
// Set matches nothing.
//
// Security invariant: the secret is hashed once and compared with every
// entry in constant time, with no early exit, so the time taken says
// neither whether a secret matched nor which entry did.
func (c *Set) Match(secret string) (Credential, bool) {
	if c == nil {
		return Credential{}, false
	}
	sum := sha256.Sum256([]byte(secret))
	cur := c.cur.Load()
	idx, found := 0, 0
	for i := range cur.entries {
		eq := subtle.ConstantTimeCompare(sum[:], cur.entries[i].hash[:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found == 0 {
		return Credential{}, false
	}
	return cur.entries[idx], true
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
		return "", fmt.Errorf("credentials: generate secret: %w", err)
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Line returns the credentials-file line for a credential named name with
// the given role and secret, after checking the name and role.
func Line(name string, role Role, secret string) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("credentials: credential name %q must be 1 to 64 letters, digits, '.', '_', '@' or '-'", name)
	}
	if role.Permissions() == 0 {
		return "", fmt.Errorf("credentials: unknown role %q (want %s)", string(role), roleNames)
	}
	if secret == "" {
		return "", errors.New("credentials: empty secret")
	}
	return name + " " + string(role) + " " + HashSecret(secret), nil
}

// PackagerLine is Line for a packager credential limited to the content ID
// patterns (none: any content).
func PackagerLine(name, secret string, patterns []string) (string, error) {
	line, err := Line(name, RolePackager, secret)
	if err != nil || len(patterns) == 0 {
		return line, err
	}
	v := strings.Join(patterns, ",")
	if _, err := parseContents(v); err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	return line + " " + contentColumn + v, nil
}
