package keystore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
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
	// ErrFull: the store refuses writes for lack of room (a full disk, a
	// Redis at maxmemory, a Redis that cannot persist). It matches
	// ErrUnavailable: it is transient, nothing was written, and what is
	// stored stays readable.
	ErrFull = fmt.Errorf("%w: store full", ErrUnavailable)
	// ErrNotReplicated: the write was done on the primary, but fewer
	// replicas than required confirmed it in time. It may survive a
	// failover or not: the caller must not count it as done, and sends it
	// again (every write is retry-safe; the retry waits for the replicas
	// again). It does not match ErrUnavailable: the store answered.
	ErrNotReplicated = errors.New("keystore: write not confirmed by enough replicas in time")
	// ErrStoreLost: the store lost its data (its marker is gone, or it is
	// empty where it held keys). Nothing is written into it, and a key it
	// does not find is not reported missing, until an operator adopts the
	// store (Keys.Adopt).
	ErrStoreLost = errors.New("keystore: the store lost its data")
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
	// Assets are the asset IDs the key belongs to: set at creation, and
	// changed only by Link and Unlink.
	Assets []string
	// Period and TrackType say what a key was created for by a packager
	// (SPEKE): the CPIX key period and the ContentKeyUsageRule's
	// intendedTrackType. Set at creation, never changed; nil and "" for
	// keys made otherwise.
	Period    *KeyPeriod
	TrackType string
	// AuthorizationPolicyID is the AMS ContentKey's AuthorizationPolicyId,
	// stored as given ("" when none; records written before it read as "").
	AuthorizationPolicyID string
}

// Store is the contract every storage backend implements. Implementations
// must be safe for concurrent use, honour the context's deadline, translate
// their own errors into ErrNotFound, ErrExists and ErrUnavailable, and keep
// Create atomic: of two concurrent Creates for one ID exactly one succeeds.
// A stored record's ID never changes, its Assets change only through Link
// and Unlink, and its key material (Sealed) changes only by a format
// upgrade (see CheckUpdate): no method overwrites them otherwise.
type Store interface {
	// Get returns the record stored for id, or ErrNotFound.
	Get(ctx context.Context, id KeyID) (Record, error)
	// Create stores r if no record exists for r.ID, else returns ErrExists
	// and leaves the stored record untouched.
	Create(ctx context.Context, r Record) error
	// CreateBatch is Create for many records in as few round trips as the
	// backend allows (pipelined, or one transaction per chunk). It returns
	// one result per record (nil, ErrExists, or another error) when the
	// batch was attempted, or a single error when it could not be. A KID
	// repeated in the batch answers ErrExists the second time. A batch cut
	// off part-way leaves some records written and others not; sending the
	// same batch again completes it (the written ones answer ErrExists).
	//
	// A backend that reads the stored record of a taken ID anyway, in the
	// same round trips, reports it as an *ExistsError (which matches
	// ErrExists), so that an import can compare values without reading
	// each key again; a plain ErrExists makes the caller read it with Get.
	CreateBatch(ctx context.Context, rs []Record) ([]error, error)
	// Update changes the stored record of id in one atomic
	// read-modify-write: fn gets the current record and edits it. Only
	// Name, Updated and DeletedAt may change, and Sealed by a format
	// upgrade; any other change is refused (CheckUpdate). It returns the
	// record as stored, or ErrNotFound.
	Update(ctx context.Context, id KeyID, fn func(*Record) error) (Record, error)
	// Delete removes the record of id for good, or returns ErrNotFound.
	// check, when not nil, sees the stored record first, in the same
	// atomic step; its error cancels the delete.
	Delete(ctx context.Context, id KeyID, check func(*Record) error) error
	// List returns up to limit records whose IDs are at or after from, in
	// ascending byte order of ID. Deleted records are included.
	List(ctx context.Context, from KeyID, limit int) ([]Record, error)
	// ListAsset returns up to limit IDs of the keys that belong to asset,
	// at or after from, ascending.
	ListAsset(ctx context.Context, asset string, from KeyID, limit int) ([]KeyID, error)
	// Link adds asset to the Assets of id's record, in one atomic
	// read-modify-write of the record, and to the index ListAsset reads.
	// An asset the record has already changes nothing (and writes its
	// index entry again, so that retrying a Link that failed part-way
	// completes it). It returns the record as stored, or ErrNotFound.
	Link(ctx context.Context, id KeyID, asset string) (Record, error)
	// Unlink removes asset from the Assets of id's record, in one atomic
	// read-modify-write, and from the index. An asset the record does not
	// have changes nothing. It returns the record as stored, or
	// ErrNotFound.
	Unlink(ctx context.Context, id KeyID, asset string) (Record, error)
	// GetMeta returns a small named value of the store's own (such as the
	// KEK check values), or ErrNotFound.
	GetMeta(ctx context.Context, name string) ([]byte, error)
	// CreateMeta stores a named value if absent, else returns ErrExists.
	CreateMeta(ctx context.Context, name string, value []byte) error
	// ListMeta returns the names of the meta values that start with
	// prefix, in byte order.
	ListMeta(ctx context.Context, prefix string) ([]string, error)
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// Expiring is an optional Store capability: small named values that the
// store forgets after a while, such as the idempotency keys of creates
// (Keys.ClaimIdempotency). They live apart from the meta values: GetMeta
// and ListMeta never see them. Both backends implement it, checked by the
// conformance suite.
type Expiring interface {
	// CreateExpiring stores value under name for ttl (at least), if no
	// value that has not expired is stored under name; else it returns
	// ErrExists and leaves the stored value untouched.
	CreateExpiring(ctx context.Context, name string, value []byte, ttl time.Duration) error
	// GetExpiring returns the value stored under name, or ErrNotFound when
	// there is none or it has expired.
	GetExpiring(ctx context.Context, name string) ([]byte, error)
}

// ExistsError is a CreateBatch (or Create) result for a record whose ID is
// taken, carrying the record found stored under it. It matches ErrExists
// with errors.Is; get it with errors.As. Its message names the ID only.
type ExistsError struct {
	// ID is the ID the record was to be created under.
	ID KeyID
	// Stored is the record stored under ID, as read in the same step: a
	// stored record, untrusted like any other (Keys.open checks it).
	Stored Record
}

func (e *ExistsError) Error() string { return fmt.Sprintf("%v: %s", ErrExists, e.ID) }

// Is reports whether target is ErrExists.
func (e *ExistsError) Is(target error) bool { return target == ErrExists }

// ErrImmutable is returned by Update when fn changed a field that never
// changes (the ID, the IV, the type, the creation method, the creation time,
// the AuthorizationPolicyID, the key period, the track type, or the assets,
// which only Link and Unlink change), or changed the sealed key other than
// by a format upgrade.
var ErrImmutable = errors.New("keystore: only the name, the update time and the deletion time of a stored key can change")

// CheckUpdate compares a record before and after an Update's fn. Backends
// call it so that every backend refuses the same changes.
//
// The sealed key may change in one way only: a format upgrade, which Keys
// writes when it updates a key sealed in an older format. What a store can
// see of it is checked here: the value was sealed in format 1 and is now in
// format 2, under the same KEK (the same KEK ID bytes after the version
// byte), at the same length. Sealed values start with a version byte, the
// KEK ID's length and the KEK ID; format 2 is the current one. That the
// plaintext is unchanged is what Keys checks before writing: a store never
// sees it.
func CheckUpdate(before, after *Record) error {
	sealed := bytes.Equal(before.Sealed, after.Sealed) || sealUpgrade(before.Sealed, after.Sealed)
	if before.ID != after.ID || !sealed || !bytes.Equal(before.IV, after.IV) ||
		before.Type != after.Type || before.Method != after.Method || !before.Created.Equal(after.Created) ||
		!slices.Equal(before.Assets, after.Assets) || !before.Period.Equal(after.Period) || before.TrackType != after.TrackType ||
		before.AuthorizationPolicyID != after.AuthorizationPolicyID {
		return ErrImmutable
	}
	return nil
}

// Next returns the ID right after id in byte order, for paging with List,
// and false when id is the last possible ID.
func (id KeyID) Next() (KeyID, bool) {
	for i := len(id) - 1; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			return id, true
		}
	}
	return id, false
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
	Assets    []string       `json:"assets,omitempty"`
	Period    *periodJSON    `json:"period,omitempty"`
	TrackType string         `json:"trackType,omitempty"`
	// AuthPolicy is the AMS AuthorizationPolicyId; absent in records
	// written before it existed, which read as "".
	AuthPolicy string `json:"authorizationPolicyId,omitempty"`
}

// periodJSON is the stored encoding of a KeyPeriod.
type periodJSON struct {
	Index uint64     `json:"index"`
	Start *time.Time `json:"start,omitempty"`
	End   *time.Time `json:"end,omitempty"`
}

func encodePeriod(p *KeyPeriod) *periodJSON {
	if p == nil {
		return nil
	}
	j := &periodJSON{Index: p.Index}
	if !p.Start.IsZero() {
		t := p.Start.UTC()
		j.Start = &t
	}
	if !p.End.IsZero() {
		t := p.End.UTC()
		j.End = &t
	}
	return j
}

func decodePeriod(j *periodJSON) *KeyPeriod {
	if j == nil {
		return nil
	}
	p := &KeyPeriod{Index: j.Index}
	if j.Start != nil {
		p.Start = *j.Start
	}
	if j.End != nil {
		p.End = *j.End
	}
	return p
}

const recordVersion = 1

// EncodeRecord returns the stored form of r. Backends use it so that every
// backend persists the same bytes.
func EncodeRecord(r Record) ([]byte, error) {
	j := recordJSON{V: recordVersion, ID: r.ID, Sealed: r.Sealed, IV: r.IV, Name: r.Name,
		Type: r.Type, Method: r.Method, Created: r.Created.UTC(), Updated: r.Updated.UTC(), Assets: r.Assets,
		Period: encodePeriod(r.Period), TrackType: r.TrackType, AuthPolicy: r.AuthorizationPolicyID}
	if !r.DeletedAt.IsZero() {
		d := r.DeletedAt.UTC()
		j.DeletedAt = &d
	}
	return json.Marshal(j)
}

// DecodeRecord parses what EncodeRecord wrote. The result shares no memory
// with b.
//
// It reads with github.com/go-json-experiment/json, the module
// encoding/json/v2 is developed from (no unsafe code, like the standard
// library), because every uncached key request decodes a record: it takes
// half the time and a third of the allocations of encoding/json here. Its
// defaults are stricter than encoding/json's (names match exactly, a
// repeated name or invalid UTF-8 is an error), and what EncodeRecord writes
// meets them. When encoding/json/v2 leaves GOEXPERIMENT, only the import
// changes.
func DecodeRecord(b []byte) (Record, error) {
	var j recordJSON
	if err := jsonv2.Unmarshal(b, &j); err != nil {
		return Record{}, fmt.Errorf("keystore: decode record: %w", err)
	}
	if j.V != recordVersion {
		return Record{}, fmt.Errorf("keystore: decode record: unknown version %d", j.V)
	}
	r := Record{ID: j.ID, Sealed: j.Sealed, IV: j.IV, Name: j.Name, Type: j.Type,
		Method: j.Method, Created: j.Created, Updated: j.Updated, Assets: j.Assets,
		Period: decodePeriod(j.Period), TrackType: j.TrackType, AuthorizationPolicyID: j.AuthPolicy}
	if j.DeletedAt != nil {
		r.DeletedAt = *j.DeletedAt
	}
	return r, nil
}
