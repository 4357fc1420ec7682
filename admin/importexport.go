package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/keystore"
)

// maxExportKeys caps one export request.
const maxExportKeys = 10000

// entryProblem names one bad entry of an import batch.
type entryProblem struct {
	Index  int    `json:"index"`
	KID    string `json:"kid,omitempty"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// batchError refuses a whole import batch: nothing was written.
type batchError struct{ problems []entryProblem }

func (e *batchError) Error() string {
	return fmt.Sprintf("admin: import refused: %d bad entries", len(e.problems))
}

// conflictError reports KIDs stored with a different key: those were left
// untouched; the other keys of the batch were imported (see results).
type conflictError struct {
	kids    []string
	results []importedKey
}

func (e *conflictError) Error() string {
	return fmt.Sprintf("admin: import: %d keys conflict with stored keys", len(e.kids))
}

// importedKey is one entry of the import answer: the seed's ContentKey
// shape plus Status.
type importedKey struct {
	ID             string `json:"Id"`
	Name           string `json:"Name"`
	Created        string `json:"Created"`
	Updated        string `json:"Updated"`
	CreationMethod int    `json:"CreationMethod"`
	Status         string `json:"Status"`
}

// importKeys serves POST /api/keys/import and POST /api/Import/ContentKeys:
// a JSON array [{"Id","Data","Iv"}] or a CPIX document. The whole batch is
// validated first; any bad entry refuses it (400, naming each), and nothing
// is written. A KID already stored with the same key is "unchanged"; with a
// different key it is a conflict (409 naming it) and the stored key is
// untouched. A store failure part-way answers 503: send the batch again.
func (s *server) importKeys(c echo.Context) error {
	keys, err := s.readImport(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	defer func() {
		for i := range keys {
			clear(keys[i].Value[:])
		}
	}()
	kids := make([]keystore.KeyID, len(keys))
	for i := range keys {
		kids[i] = keys[i].ID
	}
	if err := s.begin(c, kids); err != nil {
		return err
	}
	results, err := s.keys.Import(c.Request().Context(), keys)
	var answer []importedKey
	if err == nil {
		answer = make([]importedKey, len(results))
		var conflicts []string
		for i, r := range results {
			answer[i] = importedKey{
				ID: r.Key.ID.String(), Name: r.Key.Name,
				Created: r.Key.Created.UTC().Format(time.RFC3339Nano), Updated: r.Key.Updated.UTC().Format(time.RFC3339Nano),
				CreationMethod: int(r.Key.Method), Status: r.Status.String(),
			}
			if r.Status == keystore.Conflict {
				conflicts = append(conflicts, answer[i].ID)
			}
		}
		if conflicts != nil {
			err = &conflictError{kids: conflicts, results: answer}
		}
	}
	if err := s.conclude(c, kids, err, true); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, answer)
}

// readImport reads and validates the body: JSON or CPIX by Content-Type.
func (s *server) readImport(c echo.Context) ([]keystore.Key, error) {
	r := c.Request()
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil {
		mt = ""
	}
	typ, err := importType(c.QueryParam("type"))
	if err != nil {
		return nil, err
	}
	body := http.MaxBytesReader(c.Response(), r.Body, s.maxImportBytes)
	tooLarge := &requestError{status: http.StatusRequestEntityTooLarge, reason: reasonBodyTooLarge,
		detail: fmt.Sprintf("the import is larger than %d bytes (--max-import-bytes)", s.maxImportBytes)}
	switch mt {
	case "application/json", "text/json":
		b, err := io.ReadAll(body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge
			}
			return nil, badRequest("invalid_body", "the request body could not be read")
		}
		return parseJSONImport(b, typ, s.rand)
	case "application/xml", "application/cpix+xml", "text/xml":
		doc, err := cpix.Read(body, s.maxImportBytes)
		var mbe *http.MaxBytesError
		if errors.Is(err, cpix.ErrTooLarge) || errors.As(err, &mbe) {
			return nil, tooLarge
		}
		var re *cpix.ReadError
		if errors.As(err, &re) {
			be := &batchError{}
			for _, p := range re.Problems {
				be.problems = append(be.problems, entryProblem{Index: p.Index, KID: p.KID, Reason: p.Reason, Detail: p.Detail})
			}
			return nil, be
		}
		if err != nil {
			return nil, badRequest("invalid_cpix", "the body is not a CPIX document: %s", cpixDetail(err))
		}
		keys := make([]keystore.Key, len(doc.Keys))
		for i, k := range doc.Keys {
			keys[i] = keystore.Key{ID: keystore.KeyID(k.KID), IV: k.IV, Type: typ, Method: keystore.CreatedImport}
			copy(keys[i].Value[:], k.Value)
			clear(k.Value)
		}
		if len(keys) == 0 {
			return nil, badRequest("empty_import", "the CPIX document holds no ContentKey")
		}
		return keys, nil
	}
	return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: "unsupported_media_type",
		detail: "send a JSON array as application/json, or a CPIX document as application/xml or application/cpix+xml"}
}

// cpixDetail is the error text of a CPIX parse failure; cpix never quotes
// key material in it.
func cpixDetail(err error) string {
	return strings.TrimPrefix(err.Error(), "cpix: ")
}

func importType(q string) (keystore.ContentKeyType, error) {
	if q == "" {
		return keystore.EnvelopeEncryption, nil
	}
	t, err := keystore.ParseContentKeyType(q)
	if err != nil {
		return 0, badRequest("invalid_type", "type must be a content key type: 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption or 4 EnvelopeEncryption")
	}
	return t, nil
}

// jsonImportEntry is one entry of the seed's JSON import format.
type jsonImportEntry struct {
	ID   *string `json:"Id"`
	Data *string `json:"Data"`
	IV   *string `json:"Iv"`
	Name *string `json:"Name"`
}

// parseJSONImport validates the whole array and reports every bad entry.
func parseJSONImport(b []byte, typ keystore.ContentKeyType, rand io.Reader) ([]keystore.Key, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, badRequest("invalid_body", "the body must be a JSON array of {\"Id\",\"Data\",\"Iv\"} objects")
	}
	if len(raw) == 0 {
		return nil, badRequest("empty_import", "the array holds no key")
	}
	keys := make([]keystore.Key, 0, len(raw))
	var problems []entryProblem
	first := map[keystore.KeyID]int{}
	for i, r := range raw {
		var e jsonImportEntry
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			problems = append(problems, entryProblem{Index: i, Reason: "invalid_entry", Detail: "each entry must be an object with the string fields Id, Data, Iv (and optionally Name)"})
			continue
		}
		k := keystore.Key{Type: typ, Method: keystore.CreatedImport}
		kidText := ""
		bad := func(reason, detail string) {
			problems = append(problems, entryProblem{Index: i, KID: kidText, Reason: reason, Detail: detail})
		}
		n := len(problems)
		if e.ID != nil && *e.ID != "" {
			kidText = truncate(*e.ID, 64)
			id, err := keystore.ParseKeyID(*e.ID)
			if err != nil {
				bad("invalid_kid", "Id must be a UUID")
			}
			k.ID = id
		} else {
			var err error
			if k.ID, err = newUUIDv4(rand); err != nil {
				return nil, err
			}
		}
		if e.Data == nil || *e.Data == "" {
			bad("missing_data", "Data (the 16-byte key, base64) is required")
		} else if err := decodeExact(k.Value[:], *e.Data); err != nil {
			bad("invalid_data", "Data must be exactly 16 bytes in canonical standard base64: "+err.Error())
		}
		if e.IV != nil && *e.IV != "" {
			k.IV = make([]byte, 16)
			if err := decodeExact(k.IV, *e.IV); err != nil {
				bad("invalid_iv", "Iv must be exactly 16 bytes in canonical standard base64: "+err.Error())
			}
		}
		if e.Name != nil {
			if err := checkName(*e.Name); err != nil {
				bad("invalid_name", "Name must be at most 256 bytes of text without control characters")
			}
			k.Name = *e.Name
		}
		if len(problems) == n && e.ID != nil && *e.ID != "" {
			if j, dup := first[k.ID]; dup {
				bad("duplicate_kid", fmt.Sprintf("Id %s appears again (first at index %d)", k.ID, j))
			} else {
				first[k.ID] = i
			}
		}
		keys = append(keys, k)
	}
	if problems != nil {
		for i := range keys {
			clear(keys[i].Value[:])
		}
		return nil, &batchError{problems: problems}
	}
	return keys, nil
}

// decodeExact decodes s into dst, which it must fill exactly, and refuses
// non-canonical spellings of the same bytes. Its error never quotes s.
func decodeExact(dst []byte, s string) error {
	if len(s) != base64.StdEncoding.EncodedLen(len(dst)) {
		return fmt.Errorf("it is %d characters, want %d", len(s), base64.StdEncoding.EncodedLen(len(dst)))
	}
	buf := make([]byte, len(dst)+2)
	n, err := base64.StdEncoding.Strict().Decode(buf, []byte(s))
	defer clear(buf)
	if err != nil {
		return errors.New("it is not standard base64")
	}
	if n != len(dst) {
		return fmt.Errorf("it decodes to %d bytes", n)
	}
	if base64.StdEncoding.EncodeToString(buf[:n]) != s {
		return errors.New("it is not the canonical encoding of its bytes")
	}
	copy(dst, buf[:n])
	return nil
}

// exportKeys serves POST /api/keys/export {"kids":[...]}: a CPIX 2.3
// document with the keys in the clear (PlainValue), which the import reads
// back byte for byte. Role exporter.
func (s *server) exportKeys(c echo.Context) error {
	fields, err := readObject(c, 1<<20)
	var req struct {
		KIDs []string `json:"kids"`
	}
	for name := range fields {
		if err == nil && name != "kids" {
			err = badRequest("unknown_field", "unknown field %q: the body is {\"kids\": [KID, ...]}", truncate(name, 64))
		}
	}
	if err == nil {
		if raw, ok := fields["kids"]; !ok || json.Unmarshal(raw, &req.KIDs) != nil || len(req.KIDs) == 0 {
			err = badRequest("invalid_kids", "the body must be {\"kids\": [KID, ...]} with at least one KID")
		} else if len(req.KIDs) > maxExportKeys {
			err = badRequest("too_many_kids", "at most %d KIDs per export", maxExportKeys)
		}
	}
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	ids := make([]keystore.KeyID, 0, len(req.KIDs))
	seen := map[keystore.KeyID]bool{}
	for _, k := range req.KIDs {
		id, err := keystore.ParseKeyID(k)
		if err != nil {
			return s.conclude(c, nil, err, false)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	doc := &cpix.Document{Keys: make([]cpix.Key, 0, len(ids))}
	defer func() {
		for _, k := range doc.Keys {
			clear(k.Value)
		}
	}()
	ctx := c.Request().Context()
	for _, id := range ids {
		k, err := s.keys.Get(ctx, id)
		if err != nil {
			return s.conclude(c, ids, &keyError{id: id, err: err}, false)
		}
		doc.Keys = append(doc.Keys, cpix.Key{KID: id, Value: bytes.Clone(k.Value[:]), IV: k.IV})
		clear(k.Value[:])
	}
	var buf bytes.Buffer
	if err := cpix.Write(&buf, doc); err != nil {
		return s.conclude(c, ids, err, false)
	}
	if err := s.conclude(c, ids, nil, false); err != nil {
		return err
	}
	defer clear(buf.Bytes())
	return c.Blob(http.StatusOK, "application/cpix+xml", buf.Bytes())
}
