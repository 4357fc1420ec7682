package keystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors every Store and Keys speak. Callers match them with errors.Is.
var (
	// ErrNotFound: no such key (or meta entry).
	ErrNotFound = errors.New("keystore: not found")
	// ErrExists: a key with that ID is already stored. A stored key is
	// never overwritten.
	ErrExists = errors.New("keystore: already exists")
	// ErrUnavailable: the store did not answer in time or is unreachable.
	// It is transient: the same call may succeed later.
	ErrUnavailable = errors.New("keystore: store unavailable")
	// ErrSealed: a sealed value could not be opened (wrong or missing KEK,
	// or the value was tampered with or moved to another KID).
	ErrSealed = errors.New("keystore: cannot open sealed value")
)

// Record is what a Store persists for one key: metadata in the clear and
// the key material sealed (see Keyring.seal). A Store never sees key
// material in the clear.
type Record struct {
	ID        KeyID
	Sealed    []byte
	IV        []byte
	Name      string
	Type      ContentKeyType
	Method    CreationMethod
	Created   time.Time
	Updated   time.Time
	DeletedAt time.Time
}

// Store is the contract every storage backend implements. Implementations
// must be safe for concurrent use, honour the context's deadline, translate
// their own errors into ErrNotFound, ErrExists and ErrUnavailable, and keep
// Create atomic: of two concurrent Creates for one ID exactly one succeeds.
type Store interface {
	// Get returns the record stored for id, or ErrNotFound.
	Get(ctx context.Context, id KeyID) (Record, error)
	// Create stores r if no record exists for r.ID, else returns ErrExists
	// and leaves the stored record untouched.
	Create(ctx context.Context, r Record) error
	// GetMeta returns a small named value of the store's own (such as the
	// KEK check values), or ErrNotFound.
	GetMeta(ctx context.Context, name string) ([]byte, error)
	// CreateMeta stores a named value if absent, else returns ErrExists.
	CreateMeta(ctx context.Context, name string, value []byte) error
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// recordJSON is the stored encoding of a Record, shared by every backend so
// that a dump from one can be read by another.
type recordJSON struct {
	V         int            `json:"v"`
	ID        KeyID          `json:"id"`
	Sealed    []byte         `json:"sealed"`
	IV        []byte         `json:"iv,omitempty"`
	Name      string         `json:"name,omitempty"`
	Type      ContentKeyType `json:"type"`
	Method    CreationMethod `json:"method"`
	Created   time.Time      `json:"created"`
	Updated   time.Time      `json:"updated"`
	DeletedAt *time.Time     `json:"deletedAt,omitempty"`
}

const recordVersion = 1

// EncodeRecord returns the stored form of r. Backends use it so that every
// backend persists the same bytes.
func EncodeRecord(r Record) ([]byte, error) {
	j := recordJSON{V: recordVersion, ID: r.ID, Sealed: r.Sealed, IV: r.IV, Name: r.Name,
		Type: r.Type, Method: r.Method, Created: r.Created.UTC(), Updated: r.Updated.UTC()}
	if !r.DeletedAt.IsZero() {
		d := r.DeletedAt.UTC()
		j.DeletedAt = &d
	}
	return json.Marshal(j)
}

// DecodeRecord parses what EncodeRecord wrote.
func DecodeRecord(b []byte) (Record, error) {
	var j recordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Record{}, fmt.Errorf("keystore: decode record: %w", err)
	}
	if j.V != recordVersion {
		return Record{}, fmt.Errorf("keystore: decode record: unknown version %d", j.V)
	}
	r := Record{ID: j.ID, Sealed: j.Sealed, IV: j.IV, Name: j.Name, Type: j.Type,
		Method: j.Method, Created: j.Created, Updated: j.Updated}
	if j.DeletedAt != nil {
		r.DeletedAt = *j.DeletedAt
	}
	return r, nil
}
