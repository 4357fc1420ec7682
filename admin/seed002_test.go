package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
)

// Seed 002 (shared/seeds/002): POST api/Import/ContentKeys. Every example
// of the page is a test here, taken as it stands: the JSON request, the
// XML (CPIX) request, and the response's shape; then what the page types
// say: Data and Iv are "Collection of byte", Name has "Min length: 1", and
// the page lists XML formats.

// seed002JSONRequest is the page's application/json example, as it stands.
const seed002JSONRequest = `[
{
"Id": "22981a47-38dd-43ae-ae04-670b59d29bf7",
"Data": "QEA=",
"Iv": "QEA="
},
{
"Id": "22981a47-38dd-43ae-ae04-670b59d29bf7",
"Data": "QEA=",
"Iv": "QEA="
}
]`

// seed002JSONResponse is the page's response example, as it stands.
const seed002JSONResponse = `[
{
"Id": "daacfa4d-aaf5-406d-9298-cd3a04654276",
"Name": "sample string 2",
"Created": "2025-10-26T14:35:16.3000587+00:00",
"Updated": "2025-10-26T14:35:16.3000587+00:00",
"CreationMethod": 64
},
{
"Id": "daacfa4d-aaf5-406d-9298-cd3a04654276",
"Name": "sample string 2",
"Created": "2025-10-26T14:35:16.3000587+00:00",
"Updated": "2025-10-26T14:35:16.3000587+00:00",
"CreationMethod": 64
}
]`

// TestSeed002JSONRequestExample: the page's JSON example is the help
// page's generated placeholder (Data and Iv of 2 bytes, "QEA=", against
// "Max length: 16 Min length: 16"; the same Id twice): as it stands it is
// refused whole, naming each bad member of each entry, and nothing is
// stored; with 16-byte values it imports. Both media types of the page.
func TestSeed002JSONRequestExample(t *testing.T) {
	for _, ct := range []string{"application/json", "text/json"} {
		env, keys := newRealEnv(t, nil)
		r := env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, seed002JSONRequest, "Content-Type", ct)
		if r.status != 400 {
			t.Fatalf("%s: %d %s", ct, r.status, r.body)
		}
		var got []string
		for _, p := range r.problem(t).Problems {
			got = append(got, p.Reason+"@"+string(rune('0'+p.Index)))
		}
		if want := []string{"invalid_data@0", "invalid_iv@0", "invalid_data@1", "invalid_iv@1"}; !slices.Equal(got, want) {
			t.Errorf("%s: problems %v, want %v", ct, got, want)
		}
		if ks, _ := keys.List(context.Background(), keystore.KeyID{}, 10); len(ks) != 0 {
			t.Errorf("%s: a refused import stored %d keys", ct, len(ks))
		}
		// The same Id twice with valid values: refused as a duplicate.
		sixteen := base64.StdEncoding.EncodeToString([]byte("seed-002-key-16b"))
		body := strings.ReplaceAll(seed002JSONRequest, `"QEA="`, `"`+sixteen+`"`)
		r = env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, body, "Content-Type", ct)
		if p := r.problem(t); r.status != 400 || len(p.Problems) != 1 || p.Problems[0].Reason != "duplicate_kid" || p.Problems[0].Index != 1 {
			t.Errorf("%s: repeated Id: %d %s", ct, r.status, r.body)
		}
		// One entry of the example, with 16-byte values: imported.
		one := `[{"Id": "22981a47-38dd-43ae-ae04-670b59d29bf7", "Data": "` + sixteen + `", "Iv": "` + sixteen + `"}]`
		r = env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, one, "Content-Type", ct)
		if r.status != 200 || !strings.Contains(string(r.body), `"Id":"22981a47-38dd-43ae-ae04-670b59d29bf7"`) {
			t.Errorf("%s: %d %s", ct, r.status, r.body)
		}
	}
}

// TestSeed002XMLRequestExample: the page's CPIX example, as it stands
// (two keys, all-zero values and IVs), under both XML media types of the
// page.
func TestSeed002XMLRequestExample(t *testing.T) {
	seed, err := os.ReadFile("../cpix/testdata/seed-002.xml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"application/xml", "application/cpix+xml"} {
		env, keys := newRealEnv(t, nil)
		r := env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, string(seed), "Content-Type", ct)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", ct, r.status, r.body)
		}
		var out []importedKey
		r.json(t, &out)
		if len(out) != 2 || out[0].ID != "d83cb192-1135-4c4e-9267-120b0d762856" || out[1].ID != "9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeeb" {
			t.Fatalf("%s: %s", ct, r.body)
		}
		for _, id := range []string{out[0].ID, out[1].ID} {
			kid, _ := keystore.ParseKeyID(id)
			k, err := keys.Get(context.Background(), kid)
			if err != nil || k.Value != ([16]byte{}) || len(k.IV) != 16 || k.Method != keystore.CreatedImport {
				t.Errorf("%s: stored %s: %+v %v", ct, id, k, err)
			}
		}
	}
}

// TestSeed002ResponseShape: the answer has every member of the page's
// response example, of its type: Id a GUID, Name 1 to 256 characters
// (never empty), Created and Updated ISO 8601, CreationMethod a byte (2,
// Import; the page's 64 is the help page's placeholder, as "sample string
// 2" is).
func TestSeed002ResponseShape(t *testing.T) {
	var sample []map[string]any
	if err := json.Unmarshal([]byte(seed002JSONResponse), &sample); err != nil {
		t.Fatal(err)
	}
	env, _ := newRealEnv(t, nil)
	k := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	r := env.do(t, "POST", "/api/Import/ContentKeys", secretWriter,
		`[{"Data":"`+k+`"},{"Id":"`+seedKID1+`","Data":"`+k+`","Name":"rendition 1"}]`, "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got []map[string]any
	r.json(t, &got)
	guid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for i, e := range got {
		for member, v := range sample[0] {
			g, ok := e[member]
			if !ok {
				t.Errorf("entry %d lacks %s", i, member)
				continue
			}
			if _, same := g.(string); same != isString(v) {
				t.Errorf("entry %d: %s is %T, the page's is %T", i, member, g, v)
			}
		}
		if id, _ := e["Id"].(string); !guid.MatchString(id) {
			t.Errorf("entry %d: Id %v", i, e["Id"])
		}
		if name, _ := e["Name"].(string); name == "" || len(name) > 256 {
			t.Errorf("entry %d: Name %q (the page: Min length 1, Max length 256)", i, name)
		}
		for _, m := range []string{"Created", "Updated"} {
			if _, err := time.Parse(time.RFC3339Nano, e[m].(string)); err != nil {
				t.Errorf("entry %d: %s %v", i, m, e[m])
			}
		}
		if cm, _ := e["CreationMethod"].(float64); cm != 2 {
			t.Errorf("entry %d: CreationMethod %v", i, e["CreationMethod"])
		}
	}
	// Name: what was given, else the Id (the entry imported without one).
	if got[0]["Name"] != got[0]["Id"] || got[1]["Name"] != "rendition 1" {
		t.Errorf("names %v %v", got[0]["Name"], got[1]["Name"])
	}
	// The same holds for a repeated import answered "unchanged".
	r = env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, `[{"Id":"`+got[0]["Id"].(string)+`","Data":"`+k+`"}]`)
	var again []importedKey
	r.json(t, &again)
	if r.status != 200 || len(again) != 1 || again[0].Status != "unchanged" || again[0].Name != again[0].ID {
		t.Errorf("unchanged: %d %s", r.status, r.body)
	}
}

func isString(v any) bool { _, ok := v.(string); return ok }

// TestSeed002ByteArrays: Data and Iv are "Collection of byte": a JSON
// array of 16 values from 0 to 255 is read like the base64 string.
func TestSeed002ByteArrays(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	data := []byte("0123456789abcdef")
	iv := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255}
	arr := func(b []byte) string {
		n := make([]int, len(b)) // numbers, not base64
		for i, x := range b {
			n[i] = int(x)
		}
		j, _ := json.Marshal(n)
		return string(j)
	}
	body := `[{"Id":"` + seedKID1 + `","Data":` + arr(data) + `,"Iv":` + arr(iv) + `},` +
		`{"Id":"` + seedKID2 + `","Data":"` + base64.StdEncoding.EncodeToString(data) + `","Iv":` + arr(iv) + `}]`
	r := env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, body, "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for _, id := range []string{seedKID1, seedKID2} {
		kid, _ := keystore.ParseKeyID(id)
		k, err := keys.Get(context.Background(), kid)
		if err != nil || string(k.Value[:]) != string(data) || string(k.IV) != string(iv) {
			t.Errorf("%s: %+v %v", id, k, err)
		}
	}
	for name, c := range map[string]struct{ body, reason string }{
		"15 values":       {`[{"Data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}]`, "invalid_data"},
		"17 values":       {`[{"Data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}]`, "invalid_data"},
		"256":             {`[{"Data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,256]}]`, "invalid_data"},
		"negative":        {`[{"Data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,-1]}]`, "invalid_data"},
		"fraction":        {`[{"Data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,1.5]}]`, "invalid_data"},
		"strings":         {`[{"Data":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16"]}]`, "invalid_data"},
		"a number":        {`[{"Data":16}]`, "invalid_data"},
		"empty array":     {`[{"Data":[]}]`, "invalid_data"},
		"Iv of 2 bytes":   {`[{"Data":"` + base64.StdEncoding.EncodeToString(data) + `","Iv":[64,64]}]`, "invalid_iv"},
		"Data null":       {`[{"Data":null}]`, "missing_data"},
		"Iv as an object": {`[{"Data":"` + base64.StdEncoding.EncodeToString(data) + `","Iv":{}}]`, "invalid_iv"},
	} {
		r := env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, c.body)
		if p := r.problem(t); r.status != 400 || len(p.Problems) != 1 || p.Problems[0].Reason != c.reason {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

// TestSeed002XMLAnswer: the page lists XML formats; Accept:
// application/xml or text/xml answers the collection as XML.
func TestSeed002XMLAnswer(t *testing.T) {
	env, _ := newRealEnv(t, nil)
	k := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	for i, accept := range []string{"application/xml", "text/xml", "application/json;q=0.5, application/xml", "text/xml;q=0.9, */*;q=0.1"} {
		kid := []string{seedKID1, seedKID2, "22981a47-38dd-43ae-ae04-670b59d29bf7", "daacfa4d-aaf5-406d-9298-cd3a04654276"}[i]
		r := env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, `[{"Id":"`+kid+`","Data":"`+k+`"}]`, "Accept", accept)
		want := strings.Split(strings.Split(accept, ",")[len(strings.Split(accept, ","))-1], ";")[0]
		if i == 3 {
			want = "text/xml"
		}
		if ct := r.header.Get("Content-Type"); r.status != 200 || !strings.HasPrefix(ct, strings.TrimSpace(want)) {
			t.Fatalf("Accept %s: %d %s %s", accept, r.status, ct, r.body)
		}
		var doc struct {
			XMLName xml.Name
			Keys    []struct {
				Created        string
				CreationMethod int
				ID             string `xml:"Id"`
				Name           string
				Status         string
				Updated        string
			} `xml:"ContentKey"`
		}
		if err := xml.Unmarshal(r.body, &doc); err != nil {
			t.Fatalf("%s: %v\n%s", accept, err, r.body)
		}
		if doc.XMLName.Local != "ArrayOfContentKey" || len(doc.Keys) != 1 || doc.Keys[0].ID != kid || doc.Keys[0].Name != kid ||
			doc.Keys[0].CreationMethod != 2 || doc.Keys[0].Status != "created" || doc.Keys[0].Created == "" {
			t.Errorf("%s: %s", accept, r.body)
		}
		if !strings.HasPrefix(string(r.body), `<?xml version="1.0" encoding="UTF-8"?>`) || strings.Contains(string(r.body), k) {
			t.Errorf("%s: %s", accept, r.body)
		}
	}
	// JSON stays the default, and wins a tie.
	for _, accept := range []string{"", "*/*", "application/json", "application/json, application/xml", "application/xml;q=0.5, application/json"} {
		r := env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, `[{"Data":"`+k+`"}]`, "Accept", accept)
		if ct := r.header.Get("Content-Type"); r.status != 200 || !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Accept %q: %d %s", accept, r.status, ct)
		}
	}
	// Errors stay problem documents.
	if r := env.do(t, "POST", "/api/Import/ContentKeys", secretWriter, seed002JSONRequest, "Accept", "application/xml"); r.status != 400 || r.problem(t).Reason != "invalid_entries" {
		t.Errorf("refusal as XML? %d %s", r.status, r.body)
	}
}
