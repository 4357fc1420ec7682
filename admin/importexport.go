package admin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/keystore"
)

// maxExportKeys caps one export request.
const maxExportKeys = 10000

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
func (a *api) importKeys(c *plane.Call) (plane.Answer, error) {
	keys, err := a.readImport(c)
	defer func() {
		for i := range keys {
			clear(keys[i].Value[:])
		}
	}()
	if err != nil {
		return plane.Answer{}, err
	}
	kids := make([]keystore.KeyID, len(keys))
	for i := range keys {
		kids[i] = keys[i].ID
	}
	w, err := c.Begin(kids...)
	if err != nil {
		return plane.Answer{}, err
	}
	results, err := w.Import(c.Context(), keys)
	if err != nil {
		return plane.Answer{}, err
	}
	answer := make([]importedKey, len(results))
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
		return plane.Answer{}, &plane.ConflictError{KIDs: conflicts, Results: answer}
	}
	return plane.JSON(http.StatusOK, answer), nil
}

// readImport reads and validates the body: JSON or CPIX by Content-Type.
func (a *api) readImport(c *plane.Call) ([]keystore.Key, error) {
	typ, err := importType(c.Query("type"))
	if err != nil {
		return nil, err
	}
	tooLarge := fmt.Sprintf("the import is larger than %d bytes (--max-import-bytes)", a.maxImportBytes)
	switch c.MediaType() {
	case "application/json", "text/json":
		b, err := c.ReadBody(a.maxImportBytes, tooLarge)
		if err != nil {
			return nil, err
		}
		return parseJSONImport(b, typ, a.rand)
	case "application/xml", "application/cpix+xml", "text/xml":
		doc, err := cpix.Read(c.Body(a.maxImportBytes), a.maxImportBytes)
		var mbe *http.MaxBytesError
		if errors.Is(err, cpix.ErrTooLarge) || errors.As(err, &mbe) {
			return nil, &plane.RequestError{Status: http.StatusRequestEntityTooLarge, Reason: plane.ReasonBodyTooLarge, Detail: tooLarge}
		}
		var re *cpix.ReadError
		if errors.As(err, &re) {
			be := &plane.EntriesError{}
			for _, p := range re.Problems {
				be.Problems = append(be.Problems, httpedge.EntryProblem{Index: p.Index, KID: p.KID, Reason: p.Reason, Detail: p.Detail})
			}
			return nil, be
		}
		if err != nil {
			return nil, plane.Invalid("invalid_cpix", "the body is not a CPIX document: %s", cpixDetail(err))
		}
		keys := make([]keystore.Key, len(doc.Keys))
		for i, k := range doc.Keys {
			keys[i] = keystore.Key{ID: keystore.KeyID(k.KID), IV: k.IV, Type: typ, Method: keystore.CreatedImport}
			copy(keys[i].Value[:], k.Value)
			clear(k.Value)
		}
		if len(keys) == 0 {
			return nil, plane.Invalid("empty_import", "the CPIX document holds no ContentKey")
		}
		return keys, nil
	}
	return nil, &plane.RequestError{Status: http.StatusUnsupportedMediaType, Reason: "unsupported_media_type",
		Detail: "send a JSON array as application/json, or a CPIX document as application/xml or application/cpix+xml"}
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
		return 0, plane.Invalid("invalid_type", "type must be a content key type: 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption or 4 EnvelopeEncryption")
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
// Each entry is decoded like every other body: by exact member names,
// unknown members refused.
func parseJSONImport(b []byte, typ keystore.ContentKeyType, rand io.Reader) ([]keystore.Key, error) {
	var raw []httpedge.RawJSON
	if err := httpedge.DecodeJSONArray(b, &raw); err != nil {
		return nil, plane.Invalid("invalid_body", "the body must be a JSON array of {\"Id\",\"Data\",\"Iv\"} objects")
	}
	if len(raw) == 0 {
		return nil, plane.Invalid("empty_import", "the array holds no key")
	}
	keys := make([]keystore.Key, 0, len(raw))
	var problems []httpedge.EntryProblem
	first := map[keystore.KeyID]int{}
	for i, r := range raw {
		var e jsonImportEntry
		if err := httpedge.DecodeJSON(r, &e); err != nil {
			problems = append(problems, httpedge.EntryProblem{Index: i, Reason: "invalid_entry", Detail: "each entry must be an object with the string fields Id, Data, Iv (and optionally Name)"})
			continue
		}
		k := keystore.Key{Type: typ, Method: keystore.CreatedImport}
		kidText := ""
		bad := func(reason, detail string) {
			problems = append(problems, httpedge.EntryProblem{Index: i, KID: kidText, Reason: reason, Detail: detail})
		}
		n := len(problems)
		if e.ID != nil && *e.ID != "" {
			kidText = plane.Truncate(*e.ID, 40)
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
		} else if err := httpedge.DecodeBase64(k.Value[:], *e.Data); err != nil {
			bad("invalid_data", "Data must be exactly 16 bytes in canonical standard base64: "+err.Error())
		}
		if e.IV != nil && *e.IV != "" {
			k.IV = make([]byte, 16)
			if err := httpedge.DecodeBase64(k.IV, *e.IV); err != nil {
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
		return nil, &plane.EntriesError{Problems: problems}
	}
	return keys, nil
}

// exportBody is the body of POST /api/keys/export.
type exportBody struct {
	KIDs []string `json:"kids"`
}

// exportKeys serves POST /api/keys/export {"kids":[...]}: a CPIX 2.3
// document with the keys in the clear (PlainValue), which the import reads
// back byte for byte. Role exporter.
func (a *api) exportKeys(c *plane.Call) (plane.Answer, error) {
	var b exportBody
	err := c.DecodeJSON(&b, 1<<20, `the body is {"kids": [KID, ...]}`)
	var re *plane.RequestError
	if errors.As(err, &re) && re.Reason == "invalid_kids" || err == nil && len(b.KIDs) == 0 {
		err = plane.Invalid("invalid_kids", "the body must be {\"kids\": [KID, ...]} with at least one KID")
	} else if err == nil && len(b.KIDs) > maxExportKeys {
		err = plane.Invalid("too_many_kids", "at most %d KIDs per export", maxExportKeys)
	}
	if err != nil {
		return plane.Answer{}, err
	}
	ids := make([]keystore.KeyID, 0, len(b.KIDs))
	seen := map[keystore.KeyID]bool{}
	for _, k := range b.KIDs {
		id, err := keystore.ParseKeyID(k)
		if err != nil {
			return plane.Answer{}, err
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	c.Name(ids...)
	doc := &cpix.Document{Keys: make([]cpix.Key, 0, len(ids))}
	defer func() {
		for _, k := range doc.Keys {
			clear(k.Value)
		}
	}()
	ctx := c.Context()
	for _, id := range ids {
		k, err := c.Keys().Get(ctx, id)
		if err != nil {
			return plane.Answer{}, plane.OnKey(id, err)
		}
		doc.Keys = append(doc.Keys, cpix.Key{KID: id, Value: bytes.Clone(k.Value[:]), IV: k.IV})
		clear(k.Value[:])
	}
	var buf bytes.Buffer
	if err := cpix.Write(&buf, doc); err != nil {
		clear(buf.Bytes())
		return plane.Answer{}, err
	}
	return plane.Blob(http.StatusOK, "application/cpix+xml", buf.Bytes()).Wiped(), nil
}
