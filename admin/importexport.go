package admin

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/keystore"
)

// maxExportKeys caps one export request.
const maxExportKeys = 10000

// MaxImportKeys is the most keys one import request may hold (more is
// 413 too_many_keys): it bounds the memory of an import, which keeps every
// key of the batch and its result until the answer is written (about 1 KiB
// of live memory per key; docs/security.md has the measured peaks).
const MaxImportKeys = 100_000

// importedKey is one entry of the import answer: the seed's ContentKey
// shape (PascalCase, CreationMethod a number) plus Status, and the members
// that are there only when they say something. The JSON answer is written
// by appendImported, in this order; this type documents it and reads it
// back in tests. The XML serialisation (Accept: application/xml or
// text/xml) is the one ASP.NET Web API's XML formatter writes for the
// seed's collection (DataContractSerializer: members in alphabetical
// order, see importXML).
type importedKey struct {
	ID             string `json:"Id"`
	Name           string `json:"Name"`
	Created        string `json:"Created"`
	Updated        string `json:"Updated"`
	CreationMethod int    `json:"CreationMethod"`
	Status         string `json:"Status"`
	// IDGenerated: the entry had no Id, and the server chose this one: a
	// new KID, or (Status unchanged) the KID its bytes were stored under
	// by an earlier import without Id.
	IDGenerated bool `json:"IdGenerated,omitempty"`
	// Conflict, for Status conflict, says what differs: "key" (another
	// key is stored under the KID) or "type" (the same key, stored with
	// another content key type, which never changes).
	Conflict string `json:"Conflict,omitempty"`
	// Warning: the key is weak (see weakWarning).
	Warning string `json:"Warning,omitempty"`
}

// weakWarning is the Warning of a weak key in the import answer.
const weakWarning = "weak_key: the key is one byte repeated (all zero, for example); it was imported as asked, but content encrypted with it is barely protected"

// importKeys serves POST /api/keys/import and POST /api/Import/ContentKeys:
// a JSON array [{"Id","Data","Iv"}] or a CPIX document. The whole batch is
// validated first; any bad entry refuses it (400, listing the first 100 and
// counting them all), and nothing is written. A KID already stored with
// the same key is "unchanged"; with a different key it is a conflict (409
// naming it) and the stored key is untouched. A store failure part-way
// answers 503: send the batch again. A weak key (one byte repeated) is
// imported with a Warning in its entry, the audit record and the metric
// keydelivery_admin_warnings_total{warning="weak_key"}.
//
// An entry without Id gets the KID its bytes were stored under by an
// earlier import without Id (found by a keyed hash of the bytes, never the
// bytes: keystore's value index), else a new random one; the answer marks
// it IdGenerated. So sending the same file again answers the same KIDs,
// unchanged, instead of storing the keys again under new ones.
func (a *api) importKeys(c *plane.Call) (plane.Answer, error) {
	keys, byValue, err := a.readImport(c)
	defer func() {
		for i := range keys {
			clear(keys[i].Value[:])
		}
	}()
	if err != nil {
		return plane.Answer{}, err
	}
	if byValue != nil {
		// The KIDs earlier imports gave these values, so that the started
		// record names the KIDs the import will use.
		ids, found, err := c.Keys().KeyIDsByValue(c.Context(), keys)
		if err != nil {
			return plane.Answer{}, err
		}
		for i := range keys {
			if byValue[i] && found[i] {
				keys[i].ID = ids[i]
			}
		}
	}
	kids := func() []keystore.KeyID {
		out := make([]keystore.KeyID, len(keys))
		for i := range keys {
			out[i] = keys[i].ID
		}
		return out
	}
	var weak []keystore.KeyID
	for i := range keys {
		if keystore.WeakValue(&keys[i].Value) {
			weak = append(weak, keys[i].ID)
		}
	}
	if len(weak) > 0 {
		c.Warn("weak_key", len(weak), weakDetail(weak))
	}
	w, err := c.Begin(kids()...)
	if err != nil {
		return plane.Answer{}, err
	}
	var results []keystore.ImportResult
	if byValue != nil {
		results, err = w.ImportByValue(c.Context(), keys, byValue)
		c.Name(kids()...) // a concurrent import of the same bytes may have chosen another KID
	} else {
		results, err = w.Import(c.Context(), keys)
	}
	if err != nil {
		return plane.Answer{}, err
	}
	// The answer is written straight from the results: for 100,000 keys a
	// slice of importedKey and its encoding would double what the results
	// already take.
	b := make([]byte, 0, 200*len(results)+2)
	b = append(b, '[')
	var conflicts []string
	for i := range results {
		r := &results[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendImported(b, r, byValue != nil && byValue[i], keystore.WeakValue(&keys[i].Value))
		if r.Status == keystore.Conflict {
			conflicts = append(conflicts, r.Key.ID.String())
		}
	}
	b = append(b, ']')
	if conflicts != nil {
		return plane.Answer{}, &plane.ConflictError{KIDs: conflicts, Results: json.RawMessage(b)}
	}
	if ct := wantsXML(c.Header("Accept")); ct != "" {
		xb, err := importXML(results, byValue, func(i int) bool { return keystore.WeakValue(&keys[i].Value) })
		if err != nil {
			return plane.Answer{}, err
		}
		return plane.Blob(http.StatusOK, ct, xb), nil
	}
	return plane.Blob(http.StatusOK, "application/json", append(b, '\n')), nil
}

// weakDetail names at most ten weak keys.
func weakDetail(ids []keystore.KeyID) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d imported keys are one byte repeated:", len(ids))
	for i, id := range ids {
		if i == 10 {
			sb.WriteString(" ...")
			break
		}
		sb.WriteString(" " + id.String())
	}
	return sb.String()
}

// answeredName is the Name an import answers for k. The seed types Name
// "Max length: 256 Min length: 1" (its sample, "sample string 2", is only
// the help page's placeholder): a key imported without a name is answered
// under its Id.
func answeredName(k *keystore.Key) string {
	if k.Name == "" {
		return k.ID.String()
	}
	return k.Name
}

// appendImported appends r as encoding/json writes an importedKey.
func appendImported(b []byte, r *keystore.ImportResult, generated, weak bool) []byte {
	b = append(b, `{"Id":"`...)
	b, _ = r.Key.ID.AppendText(b)
	b = append(b, `","Name":`...)
	b = appendJSONString(b, answeredName(&r.Key))
	b = append(b, `,"Created":"`...)
	b = r.Key.Created.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","Updated":"`...)
	b = r.Key.Updated.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","CreationMethod":`...)
	b = strconv.AppendInt(b, int64(r.Key.Method), 10)
	b = append(b, `,"Status":"`...)
	b = append(b, r.Status.String()...)
	b = append(b, '"')
	if generated {
		b = append(b, `,"IdGenerated":true`...)
	}
	if r.Status == keystore.Conflict {
		if r.SameValue {
			b = append(b, `,"Conflict":"type"`...)
		} else {
			b = append(b, `,"Conflict":"key"`...)
		}
	}
	if weak && r.Status != keystore.Conflict {
		b = append(b, `,"Warning":"`...)
		b = append(b, weakWarning...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendJSONString appends s as encoding/json writes a string (HTML
// characters escaped): by hand for plain printable ASCII, the usual name,
// through encoding/json otherwise.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// readImport reads and validates the body: JSON or CPIX by Content-Type.
// byValue, when not nil, marks the entries that had no Id (JSON only):
// each has a random KID for now.
func (a *api) readImport(c *plane.Call) (keys []keystore.Key, byValue []bool, err error) {
	typ, err := importType(c.Query("type"))
	if err != nil {
		return nil, nil, err
	}
	tooLarge := fmt.Sprintf("the import is larger than %d bytes (--max-import-bytes)", a.maxImportBytes)
	switch c.MediaType() {
	case "application/json", "text/json":
		b, err := c.ReadBody(a.maxImportBytes, tooLarge)
		if err != nil {
			return nil, nil, err
		}
		keys, byValue, err := parseJSONImport(b, typ, a.rand)
		clear(b) // the body holds key material
		return keys, byValue, err
	case "application/xml", "application/cpix+xml", "text/xml":
		doc, err := cpix.ReadWith(c.Body(a.maxImportBytes), cpix.ReadOptions{Max: a.maxImportBytes, MaxKeys: MaxImportKeys, Recipient: a.recipient})
		var mbe *http.MaxBytesError
		if errors.Is(err, cpix.ErrTooLarge) || errors.As(err, &mbe) {
			return nil, nil, &plane.RequestError{Status: http.StatusRequestEntityTooLarge, Reason: plane.ReasonBodyTooLarge, Detail: tooLarge}
		}
		var re *cpix.ReadError
		if errors.As(err, &re) {
			if len(re.Problems) == 1 && re.Problems[0].Reason == cpix.ReasonTooManyKeys {
				return nil, nil, tooManyKeys()
			}
			be := &plane.EntriesError{Count: re.Count}
			for _, p := range re.Problems {
				if p.Reason == cpix.ReasonEncryptedValueUnsupported {
					p.Detail = "the key is encrypted to a recipient, and this server has no CPIX recipient key (--cpix-recipient-cert and --cpix-recipient-key, or --protection-cert and --protection-key): configure one and encrypt to its certificate, or send the key as a pskc:PlainValue over a protected channel"
				}
				be.Problems = append(be.Problems, httpedge.EntryProblem{Index: p.Index, KID: p.KID, Reason: p.Reason, Detail: p.Detail})
			}
			return nil, nil, be
		}
		if err != nil {
			return nil, nil, plane.Invalid("invalid_cpix", "the body is not a CPIX document: %s", cpixDetail(err))
		}
		keys = make([]keystore.Key, len(doc.Keys))
		for i, k := range doc.Keys {
			keys[i] = keystore.Key{ID: keystore.KeyID(k.KID), IV: k.IV, Type: typ, Method: keystore.CreatedImport}
			copy(keys[i].Value[:], k.Value)
			clear(k.Value)
		}
		if len(keys) == 0 {
			return nil, nil, plane.Invalid("empty_import", "the CPIX document holds no ContentKey")
		}
		return keys, nil, nil
	}
	return nil, nil, &plane.RequestError{Status: http.StatusUnsupportedMediaType, Reason: "unsupported_media_type",
		Detail: "send a JSON array as application/json, or a CPIX document as application/xml or application/cpix+xml"}
}

// tooManyKeys refuses an import of more than MaxImportKeys keys.
func tooManyKeys() error {
	return &plane.RequestError{Status: http.StatusRequestEntityTooLarge, Reason: "too_many_keys",
		Detail: fmt.Sprintf("an import holds at most %d keys; send them in several requests", MaxImportKeys)}
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

// jsonImportEntry is one entry of the seed's JSON import format. Data and
// Iv are "Collection of byte" in the seed: canonical standard base64 (how
// ASP.NET writes a byte array), or a JSON array of byte values (which it
// reads too).
type jsonImportEntry struct {
	ID   *string          `json:"Id"`
	Data httpedge.RawJSON `json:"Data"`
	IV   httpedge.RawJSON `json:"Iv"`
	Name *string          `json:"Name"`
}

// decodeBytes reads a Data or Iv member into dst (its length is the one
// wanted): a string of canonical standard base64, or an array of
// len(dst) integers from 0 to 255. absent is true for a missing or null
// member, or an empty string.
func decodeBytes(dst []byte, raw httpedge.RawJSON) (absent bool, err error) {
	v := bytes.TrimSpace(raw)
	switch {
	case len(v) == 0 || string(v) == "null" || string(v) == `""`:
		return true, nil
	case v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return false, errors.New("not a JSON string")
		}
		return false, httpedge.DecodeBase64(dst, s)
	case v[0] == '[':
		var ns []json.RawMessage
		if err := json.Unmarshal(v, &ns); err != nil {
			return false, errors.New("the array must hold numbers only")
		}
		if len(ns) != len(dst) {
			return false, fmt.Errorf("the array holds %d values, want %d", len(ns), len(dst))
		}
		for i, n := range ns {
			b, err := strconv.ParseUint(string(n), 10, 8) // digits only: no sign, fraction, exponent or quotes
			if err != nil {
				return false, fmt.Errorf("value %d is not an integer from 0 to 255", i)
			}
			dst[i] = byte(b)
		}
		return false, nil
	}
	return false, errors.New("want a base64 string or an array of byte values")
}

// parseJSONImport validates the whole array, reading one entry at a time
// (httpedge.EachJSON), and reports its bad entries: the first
// plane.MaxProblems of them, and how many there are. Each entry is decoded
// like every other body: by exact member names, unknown members refused.
// Once an entry is bad, the keys are no longer kept (the batch is refused
// whole), so a body of bad entries costs the body and a hundred problems.
// An entry without Id gets a random KID and is marked in byValue (nil when
// every entry has an Id).
func parseJSONImport(b []byte, typ keystore.ContentKeyType, rand io.Reader) (keys []keystore.Key, byValue []bool, err error) {
	var (
		generated    []bool
		anyGenerated bool
		problems     []httpedge.EntryProblem
		count        int
		first        = map[keystore.KeyID]int{}
		n            int
	)
	add := func(p httpedge.EntryProblem) {
		count++
		if len(problems) < plane.MaxProblems {
			problems = append(problems, p)
		}
		for i := range keys {
			clear(keys[i].Value[:])
		}
		keys, generated = nil, nil
	}
	errTooMany := errors.New("too many keys")
	err = httpedge.EachJSON(b, func(i int, raw []byte) error {
		n = i + 1
		if n > MaxImportKeys && count == 0 {
			return errTooMany // a batch of bad entries is read to the end, to count them
		}
		var e jsonImportEntry
		if err := httpedge.DecodeJSONElement(raw, &e); err != nil {
			add(httpedge.EntryProblem{Index: i, Reason: "invalid_entry", Detail: "each entry must be an object with the string fields Id, Data, Iv (and optionally Name)"})
			return nil
		}
		k := keystore.Key{Type: typ, Method: keystore.CreatedImport}
		before := count
		bad := func(reason, detail string) {
			kidText := ""
			if e.ID != nil {
				kidText = plane.Truncate(*e.ID, 40)
			}
			add(httpedge.EntryProblem{Index: i, KID: kidText, Reason: reason, Detail: detail})
		}
		if e.ID != nil && *e.ID != "" {
			id, err := keystore.ParseKeyID(*e.ID)
			if err != nil {
				bad("invalid_kid", "Id must be a UUID")
			}
			k.ID = id
		} else {
			var err error
			if k.ID, err = newUUIDv4(rand); err != nil {
				return err
			}
			anyGenerated = true
		}
		if absent, err := decodeBytes(k.Value[:], e.Data); absent {
			bad("missing_data", "Data (the 16-byte key, base64 or an array of 16 byte values) is required")
		} else if err != nil {
			bad("invalid_data", "Data must be exactly 16 bytes, in canonical standard base64 or as an array of 16 numbers from 0 to 255: "+err.Error())
		}
		iv := make([]byte, 16)
		if absent, err := decodeBytes(iv, e.IV); err != nil {
			bad("invalid_iv", "Iv must be exactly 16 bytes, in canonical standard base64 or as an array of 16 numbers from 0 to 255: "+err.Error())
		} else if !absent {
			k.IV = iv
		}
		if e.Name != nil {
			if err := checkName(*e.Name); err != nil {
				bad("invalid_name", "Name must be at most 256 bytes of text without control characters")
			}
			k.Name = *e.Name
		}
		if count == before && e.ID != nil && *e.ID != "" && len(first) < MaxImportKeys {
			if j, dup := first[k.ID]; dup {
				bad("duplicate_kid", fmt.Sprintf("Id %s appears again (first at index %d)", k.ID, j))
			} else {
				first[k.ID] = i
			}
		}
		if count == 0 {
			if keys == nil {
				// One slice sized from the body (an entry takes at least 32
				// bytes of JSON), made at the first good entry: growing it
				// by appends would allocate about five times its final
				// size on the way.
				keys = make([]keystore.Key, 0, min(MaxImportKeys, len(b)/32+1))
			}
			keys = append(keys, k)
			generated = append(generated, e.ID == nil || *e.ID == "")
		} else {
			clear(k.Value[:])
		}
		return nil
	})
	var be *httpedge.BodyError
	if err != nil {
		for i := range keys {
			clear(keys[i].Value[:])
		}
	}
	switch {
	case errors.Is(err, errTooMany):
		return nil, nil, tooManyKeys()
	case errors.As(err, &be):
		return nil, nil, plane.Invalid("invalid_body", "the body must be a JSON array of {\"Id\",\"Data\",\"Iv\"} objects")
	case err != nil:
		return nil, nil, err
	case count > 0:
		return nil, nil, &plane.EntriesError{Problems: problems, Count: count}
	case n == 0:
		return nil, nil, plane.Invalid("empty_import", "the array holds no key")
	}
	if anyGenerated {
		byValue = generated
	}
	return keys, byValue, nil
}

// exportBody is the body of POST /api/keys/export.
type exportBody struct {
	KIDs []string `json:"kids"`
	// Recipients are certificates (base64 of the DER) the keys are
	// encrypted to; none: the keys go in the clear.
	Recipients []string `json:"recipients"`
}

// maxRecipients caps the recipients of one export.
const maxRecipients = 16

// exportKeys serves POST /api/keys/export {"kids":[...]}: a CPIX 2.3
// document with the keys in the clear (PlainValue), which the import reads
// back byte for byte; with "recipients" (certificates), the keys encrypted
// to them as CPIX specifies, and no PlainValue. Role exporter.
func (a *api) exportKeys(c *plane.Call) (plane.Answer, error) {
	var b exportBody
	err := c.DecodeJSON(&b, 1<<20, `the body is {"kids": [KID, ...], "recipients": [base64 DER certificate, ...]}`)
	var re *plane.RequestError
	if errors.As(err, &re) && re.Reason == "invalid_kids" || err == nil && len(b.KIDs) == 0 {
		err = plane.Invalid("invalid_kids", "the body must be {\"kids\": [KID, ...]} with at least one KID")
	} else if err == nil && len(b.KIDs) > maxExportKeys {
		err = plane.Invalid("too_many_kids", "at most %d KIDs per export", maxExportKeys)
	}
	if err != nil {
		return plane.Answer{}, err
	}
	recipients, err := parseRecipients(b.Recipients)
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
	if recipients != nil {
		err = cpix.WriteEncrypted(&buf, doc, recipients, a.rand)
	} else {
		err = cpix.Write(&buf, doc)
	}
	if err != nil {
		clear(buf.Bytes())
		return plane.Answer{}, err
	}
	return plane.Blob(http.StatusOK, "application/cpix+xml", buf.Bytes()).Wiped(), nil
}

// parseRecipients reads the recipients of an encrypted export: standard
// base64 of DER certificates with RSA keys of at least 2048 bits.
func parseRecipients(in []string) ([]*x509.Certificate, error) {
	if len(in) > maxRecipients {
		return nil, plane.Invalid("invalid_recipients", "at most %d recipients", maxRecipients)
	}
	var out []*x509.Certificate
	for i, s := range in {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, plane.Invalid("invalid_recipients", "recipient %d is not standard base64 of a DER certificate", i+1)
		}
		cert, _, err := cpix.RecipientKey(der)
		if err != nil {
			return nil, plane.Invalid("invalid_recipients", "recipient %d: %s", i+1, strings.TrimPrefix(err.Error(), "cpix: "))
		}
		out = append(out, cert)
	}
	return out, nil
}

// wantsXML returns the XML media type the Accept header prefers over JSON
// (application/xml or text/xml, the seed's XML formats), or "" for JSON:
// XML only when it has a higher quality than every JSON type and */*.
func wantsXML(accept string) string {
	if accept == "" {
		return ""
	}
	bestXML, bestJSON, xmlType := -1.0, -1.0, ""
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		switch mt {
		case "application/xml", "text/xml":
			if q > bestXML {
				bestXML, xmlType = q, mt
			}
		case "application/json", "text/json", "*/*", "application/*":
			bestJSON = max(bestJSON, q)
		}
	}
	if bestXML > 0 && bestXML > bestJSON {
		return xmlType + "; charset=utf-8"
	}
	return ""
}

// importXMLNamespace is the data contract namespace of the XML answer.
const importXMLNamespace = "http://schemas.datacontract.org/2004/07/KeyDelivery.Import"

// xmlContentKey is an importedKey as DataContractSerializer writes it:
// members in alphabetical order.
type xmlContentKey struct {
	Conflict       string `xml:"Conflict,omitempty"`
	Created        string `xml:"Created"`
	CreationMethod int    `xml:"CreationMethod"`
	ID             string `xml:"Id"`
	IDGenerated    bool   `xml:"IdGenerated,omitempty"`
	Name           string `xml:"Name"`
	Status         string `xml:"Status"`
	Updated        string `xml:"Updated"`
	Warning        string `xml:"Warning,omitempty"`
}

type xmlContentKeys struct {
	XMLName xml.Name        `xml:"ArrayOfContentKey"`
	XMLNS   string          `xml:"xmlns,attr"`
	XMLNSI  string          `xml:"xmlns:i,attr"`
	Keys    []xmlContentKey `xml:"ContentKey"`
}

// importXML serialises the import answer as XML: <ArrayOfContentKey> of
// <ContentKey> with the members of the JSON answer.
func importXML(results []keystore.ImportResult, byValue []bool, weak func(i int) bool) ([]byte, error) {
	doc := xmlContentKeys{XMLNS: importXMLNamespace, XMLNSI: "http://www.w3.org/2001/XMLSchema-instance",
		Keys: make([]xmlContentKey, len(results))}
	for i := range results {
		r := &results[i]
		k := xmlContentKey{Created: r.Key.Created.UTC().Format(time.RFC3339Nano), CreationMethod: int(r.Key.Method),
			ID: r.Key.ID.String(), IDGenerated: byValue != nil && byValue[i], Name: answeredName(&r.Key),
			Status: r.Status.String(), Updated: r.Key.Updated.UTC().Format(time.RFC3339Nano)}
		switch {
		case r.Status == keystore.Conflict && r.SameValue:
			k.Conflict = "type"
		case r.Status == keystore.Conflict:
			k.Conflict = "key"
		case weak(i):
			k.Warning = weakWarning
		}
		doc.Keys[i] = k
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
