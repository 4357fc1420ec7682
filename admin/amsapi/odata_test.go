package amsapi

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/keystore"
)

// amsKeys creates keys through the AMS API and returns their KIDs in
// creation order; names[i] is key i's Name, types[i] its type.
func amsKeys(t *testing.T, env *testEnv, names []string, types []int) []keystore.KeyID {
	t.Helper()
	cert, _ := protectionPair()
	pub, thumb := cert.PublicKey.(*rsa.PublicKey), ams.ProtectionKeyID(cert)
	var out []keystore.KeyID
	for i, n := range names {
		var kid keystore.KeyID
		_, _ = rand.Read(kid[:])
		r := env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, pub, thumb, kid, [16]byte{byte(i + 1), 7}, map[string]any{"Name": n, "ContentKeyType": types[i]}))
		if r.status != 201 {
			t.Fatalf("create %s: %d %s", n, r.status, r.body)
		}
		out = append(out, kid)
	}
	return out
}

// listNames answers GET target (plain JSON) as the names of its entities,
// and the count when there is one.
func listNames(t *testing.T, env *testEnv, target string) ([]string, string) {
	t.Helper()
	r := env.do(t, "GET", target, secretReader, "")
	if r.status != 200 {
		t.Fatalf("%s: %d %s", target, r.status, r.body)
	}
	var v struct {
		Value []map[string]any `json:"value"`
		Count string           `json:"odata.count"`
	}
	r.json(t, &v)
	var names []string
	for _, e := range v.Value {
		n, _ := e["Name"].(string)
		names = append(names, n)
	}
	return names, v.Count
}

func TestAMSQueryOptions(t *testing.T) {
	env, keys := newAMSEnv(t)
	names := []string{"movie-1080p", "movie-720p", "trailer", "it's", "movie-480p"}
	kids := amsKeys(t, env, names, []int{4, 4, 0, 1, 4})
	// Created times differ (the clock moves between creates), in creation order.
	for _, c := range []struct {
		query string
		want  []string // in this order, unless sorted is false
		order bool
	}{
		{"$filter=" + url.QueryEscape("Name eq 'trailer'"), []string{"trailer"}, false},
		{"$filter=" + url.QueryEscape("Name eq 'it''s'"), []string{"it's"}, false},
		{"$filter=" + url.QueryEscape("Name ne 'trailer'"), []string{"movie-1080p", "movie-720p", "it's", "movie-480p"}, false},
		{"$filter=" + url.QueryEscape("ContentKeyType eq 4 and Name ne 'movie-720p'"), []string{"movie-1080p", "movie-480p"}, false},
		{"$filter=" + url.QueryEscape("ContentKeyType eq 0 or ContentKeyType eq 1"), []string{"trailer", "it's"}, false},
		{"$filter=" + url.QueryEscape("(Name eq 'trailer' or Name eq 'movie-720p') and ContentKeyType eq 4"), []string{"movie-720p"}, false},
		{"$filter=" + url.QueryEscape("Id eq 'nb:kid:UUID:"+kids[2].String()+"'"), []string{"trailer"}, false},
		{"$filter=" + url.QueryEscape("Id eq '"+strings.ToUpper(kids[3].String())+"'"), []string{"it's"}, false},
		{"$filter=" + url.QueryEscape("'trailer' eq Name"), []string{"trailer"}, false},
		{"$filter=" + url.QueryEscape("ProtectionKeyId eq '"+strings.ToLower(ams.ProtectionKeyID(mustCert()))+"' and Name eq 'trailer'"), []string{"trailer"}, false},
		{"$filter=" + url.QueryEscape("ProtectionKeyId eq null"), nil, false},
		{"$filter=" + url.QueryEscape("ProtectionKeyId ne null and ContentKeyType eq 1"), []string{"it's"}, false},
		{"$orderby=Name", []string{"it's", "movie-1080p", "movie-480p", "movie-720p", "trailer"}, true},
		{"$orderby=" + url.QueryEscape("Name desc"), []string{"trailer", "movie-720p", "movie-480p", "movie-1080p", "it's"}, true},
		{"$orderby=Created", names, true},
		{"$orderby=" + url.QueryEscape("Created desc") + "&$top=2", []string{"movie-480p", "it's"}, true},
		{"$orderby=" + url.QueryEscape("Created desc") + "&$top=2&$skip=1", []string{"it's", "trailer"}, true},
		{"$filter=" + url.QueryEscape("ContentKeyType eq 4") + "&$orderby=" + url.QueryEscape("Name desc"), []string{"movie-720p", "movie-480p", "movie-1080p"}, true},
	} {
		got, _ := listNames(t, env, "/api/ContentKeys?"+c.query)
		want := slices.Clone(c.want)
		if !c.order {
			slices.Sort(got)
			slices.Sort(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", c.query, got, want)
		}
	}
	// Counts: inline (before paging) and the $count segment.
	got, count := listNames(t, env, "/api/ContentKeys?$inlinecount=allpages&$top=2&$filter="+url.QueryEscape("ContentKeyType eq 4"))
	if len(got) != 2 || count != "3" {
		t.Errorf("inlinecount: %q, count %q", got, count)
	}
	if _, count := listNames(t, env, "/api/ContentKeys?$count=true"); count != "5" {
		t.Errorf("$count=true: %q", count)
	}
	if _, count := listNames(t, env, "/api/ContentKeys"); count != "" {
		t.Errorf("a count without asking: %q", count)
	}
	r := env.do(t, "GET", "/api/ContentKeys?$inlinecount=allpages&$top=1", secretReader, "", "Accept", verboseJSON)
	var vb struct {
		D struct {
			Results []json.RawMessage `json:"results"`
			Count   string            `json:"__count"`
		} `json:"d"`
	}
	r.json(t, &vb)
	if r.status != 200 || len(vb.D.Results) != 1 || vb.D.Count != "5" {
		t.Errorf("verbose count: %d %s", r.status, r.body)
	}
	for target, want := range map[string]string{
		"/api/ContentKeys/$count": "5",
		"/api/ContentKeys/%24count?$filter=" + url.QueryEscape("Name ne 'trailer'"): "4",
		"/API/ContentKeys/$count?$filter=" + url.QueryEscape("ContentKeyType eq 2"): "0",
	} {
		r := env.do(t, "GET", target, secretReader, "")
		if r.status != 200 || string(r.body) != want || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %d %q %s", target, r.status, r.body, r.header.Get("Content-Type"))
		}
	}
	// $select, on a collection and on an entity, plain and verbose.
	r = env.do(t, "GET", "/api/ContentKeys?$select=Name,Id&$filter="+url.QueryEscape("Name eq 'trailer'"), secretReader, "")
	if want := `{"value":[{"Id":"nb:kid:UUID:` + kids[2].String() + `","Name":"trailer"}]}`; strings.TrimSpace(string(r.body)) != want {
		t.Errorf("$select: %s, want %s", r.body, want)
	}
	r = env.do(t, "GET", "/api/ContentKeys('nb:kid:UUID:"+kids[2].String()+"')?$select=Checksum", secretReader, "", "Accept", verboseJSON)
	var sel struct {
		D map[string]json.RawMessage `json:"d"`
	}
	r.json(t, &sel)
	if _, ok := sel.D["__metadata"]; r.status != 200 || !ok || len(sel.D) != 2 || sel.D["Checksum"] == nil {
		t.Errorf("verbose $select: %d %s", r.status, r.body)
	}
	if r := env.do(t, "GET", "/api/ContentKeys?$select=*", secretReader, ""); r.status != 200 || !strings.Contains(string(r.body), `"AuthorizationPolicyId"`) {
		t.Errorf("$select=*: %d %s", r.status, r.body)
	}
	// Deleted keys stay out of filters and counts.
	if _, err := keys.Delete(context.Background(), kids[2]); err != nil {
		t.Fatal(err)
	}
	if r := env.do(t, "GET", "/api/ContentKeys/$count", secretReader, ""); string(r.body) != "4" {
		t.Errorf("count after a delete: %s", r.body)
	}
	if got, _ := listNames(t, env, "/api/ContentKeys?$filter="+url.QueryEscape("Name eq 'trailer'")); len(got) != 0 {
		t.Errorf("a deleted key matches: %q", got)
	}
	// Refusals.
	for q, reason := range map[string]string{
		"$filter=" + url.QueryEscape("Name gt 'a'"):                                        "invalid_filter",
		"$filter=" + url.QueryEscape("Name eq 4"):                                          "invalid_filter",
		"$filter=" + url.QueryEscape("ContentKeyType eq '4'"):                              "invalid_filter",
		"$filter=" + url.QueryEscape("Checksum eq 'x'"):                                    "invalid_filter",
		"$filter=" + url.QueryEscape("Name eq 'a"):                                         "invalid_filter",
		"$filter=" + url.QueryEscape("(Name eq 'a'"):                                       "invalid_filter",
		"$filter=" + url.QueryEscape("Name eq 'a' and"):                                    "invalid_filter",
		"$filter=" + url.QueryEscape("Name eq Id"):                                         "invalid_filter",
		"$filter=" + url.QueryEscape("substringof('a', Name)"):                             "invalid_filter",
		"$filter=" + strings.Repeat("(", 40) + "Name%20eq%20'a'" + strings.Repeat(")", 40): "invalid_filter",
		"$orderby=Id":                            "invalid_orderby",
		"$orderby=" + url.QueryEscape("Name up"): "invalid_orderby",
		"$select=Key":                            "invalid_select",
		"$inlinecount=some":                      "invalid_inlinecount",
		"$count=yes":                             "invalid_count",
		"$expand=ContentKeyAuthorizationPolicy":  "unsupported_query_option",
		"$filter=a&$filter=b":                    "unsupported_query_option",
	} {
		r := env.do(t, "GET", "/api/ContentKeys?"+q, secretReader, "")
		if p := r.problem(t); r.status != 400 || p.Reason != reason {
			t.Errorf("%s: %d %s, want %s", q, r.status, r.body, reason)
		}
	}
	if r := env.do(t, "GET", "/api/ContentKeys/$count?$top=1", secretReader, ""); r.status != 400 {
		t.Errorf("$count with $top: %d", r.status)
	}
	// The internal route of $count cannot be spelled directly.
	if r := env.do(t, "GET", "/api/$count/ContentKeys", secretReader, ""); r.status != 404 {
		t.Errorf("internal route: %d %s", r.status, r.body)
	}
}

func mustCert() *x509.Certificate { c, _ := protectionPair(); return c }

// TestAMSLinks: $links adds and removes the association of a content key
// with an asset, so that Assets('id')/ContentKeys lists it.
func TestAMSLinks(t *testing.T) {
	env, keys := newAMSEnv(t)
	kids := amsKeys(t, env, []string{"video", "audio"}, []int{0, 0})
	asset := "nb:cid:UUID:9bc8ff20-24fb-4fdb-9d7c-b04c7ee573a1"
	assetPath := "/api/Assets('" + asset + "')"
	list := func() []string {
		got, _ := listNames(t, env, assetPath+"/ContentKeys")
		return got
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("before any link: %q", got)
	}
	link := func(body string, hdr ...string) response {
		return env.do(t, "POST", assetPath+"/$links/ContentKeys", secretWriter, body, hdr...)
	}
	// As AMS clients send it: the absolute URI, percent-encoded key.
	r := link(`{"uri":"https://media.windows.net/api/ContentKeys('nb%3Akid%3AUUID%3A`+kids[0].String()+`')"}`,
		"Content-Type", verboseJSON, "Accept", verboseJSON, "DataServiceVersion", "3.0", "MaxDataServiceVersion", "3.0", "x-ms-version", "2.11")
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("link: %d %s", r.status, r.body)
	}
	if got := list(); !slices.Equal(got, []string{"video"}) {
		t.Fatalf("after a link: %q", got)
	}
	// Again, relative, raw key, verbose wrapper: nothing changes.
	if r := link(`{"d":{"uri":"/api/ContentKeys('nb:kid:UUID:` + kids[0].String() + `')"}}`); r.status != 204 {
		t.Fatalf("second link: %d %s", r.status, r.body)
	}
	if r := env.do(t, "POST", "/api/Assets(%27"+url.PathEscape(asset)+"%27)/%24links/ContentKeys", secretWriter,
		`{"uri":"ContentKeys('`+kids[1].String()+`')"}`); r.status != 204 {
		t.Fatalf("encoded link: %d %s", r.status, r.body)
	}
	if got := list(); !slices.Equal(got, []string{"video", "audio"}) && !slices.Equal(got, []string{"audio", "video"}) {
		t.Fatalf("two links: %q", got)
	}
	if m, _ := keys.Metadata(context.Background(), kids[0]); !slices.Equal(m.Assets, []string{asset}) {
		t.Errorf("native assets %q", m.Assets)
	}
	if r := env.do(t, "GET", assetPath+"/ContentKeys/$count", secretReader, ""); string(r.body) != "2" {
		t.Errorf("asset count %s", r.body)
	}
	// Unlink one, in both spellings of the key.
	r = env.do(t, "DELETE", assetPath+"/$links/ContentKeys('nb%3Akid%3AUUID%3A"+kids[1].String()+"')", secretWriter, "")
	if r.status != 204 {
		t.Fatalf("unlink: %d %s", r.status, r.body)
	}
	if got := list(); !slices.Equal(got, []string{"video"}) {
		t.Fatalf("after an unlink: %q", got)
	}
	r = env.do(t, "DELETE", assetPath+"/$links/ContentKeys('"+kids[1].String()+"')", secretWriter, "")
	if p := r.problem(t); r.status != 404 || p.Reason != "not_linked" {
		t.Errorf("unlink again: %d %s", r.status, r.body)
	}
	// Refusals.
	for _, c := range []struct {
		method, target, body, secret string
		status                       int
		reason                       string
	}{
		{"POST", assetPath + "/$links/ContentKeys", `{"uri":"https://media.windows.net/api/Assets('x')"}`, secretWriter, 400, "invalid_uri"},
		{"POST", assetPath + "/$links/ContentKeys", `{"uri":"ContentKeys('nope')"}`, secretWriter, 400, reasonInvalidKID},
		{"POST", assetPath + "/$links/ContentKeys", `{}`, secretWriter, 400, "missing_field"},
		{"POST", assetPath + "/$links/ContentKeys", `{"url":"x"}`, secretWriter, 400, "unknown_field"},
		{"POST", assetPath + "/$links/ContentKeys", `{"uri":"ContentKeys('00000000-0000-4000-8000-000000000000')"}`, secretWriter, 404, reasonUnknownKey},
		{"POST", "/api/Assets('a%20b')/$links/ContentKeys", `{"uri":"ContentKeys('` + kids[0].String() + `')"}`, secretWriter, 400, "invalid_asset"},
		{"POST", assetPath + "/$links/ContentKeys", `{"uri":"ContentKeys('` + kids[0].String() + `')"}`, secretReader, 403, reasonRole},
		{"DELETE", assetPath + "/$links/ContentKeys('" + kids[0].String() + "')", "", secretReader, 403, reasonRole},
		{"DELETE", assetPath + "/$links/ContentKeys('bad", "", secretWriter, 400, "invalid_odata_key"},
		{"DELETE", assetPath + "/$links/ContentKeys('00000000-0000-4000-8000-000000000000')", "", secretWriter, 404, reasonUnknownKey},
	} {
		r := env.do(t, c.method, c.target, c.secret, c.body)
		if p := r.problem(t); r.status != c.status || p.Reason != c.reason {
			t.Errorf("%s %s %s: %d %s, want %d %s", c.method, c.target, c.body, r.status, r.body, c.status, c.reason)
		}
	}
	// A deleted key cannot be linked.
	if _, err := keys.Delete(context.Background(), kids[1]); err != nil {
		t.Fatal(err)
	}
	if r := link(`{"uri":"ContentKeys('` + kids[1].String() + `')"}`); r.status != 404 || r.problem(t).Reason != "deleted" {
		t.Errorf("link of a deleted key: %d %s", r.status, r.body)
	}
	ops := auditOperations(t, env)
	for _, want := range []string{"ams.assets.links.create:started,ams.assets.links.create:ok", "ams.assets.links.delete:started,ams.assets.links.delete:ok",
		"ams.assets.links.create:forbidden", "ams.assets.contentkeys.count:ok"} {
		if !strings.Contains(ops, want) {
			t.Errorf("audit lacks %s: %s", want, ops)
		}
	}
}

// TestAMSODataErrors: a request that asks for OData JSON gets the OData
// error shape, with the problem's reason as code; others get problems.
func TestAMSODataErrors(t *testing.T) {
	env, _ := newAMSEnv(t)
	type odataErr struct {
		Code    string `json:"code"`
		Message struct {
			Lang, Value string
		} `json:"message"`
	}
	for _, c := range []struct {
		name, secret, target string
		hdr                  []string
		status               int
		key, code            string
	}{
		{"JSON light, not found", secretReader, "/api/ContentKeys('00000000-0000-4000-8000-000000000000')",
			[]string{"Accept", "application/json", "DataServiceVersion", "3.0", "MaxDataServiceVersion", "3.0"}, 404, "odata.error", reasonUnknownKey},
		{"minimal metadata, bad filter", secretReader, "/api/ContentKeys?$filter=Name%20gt%201",
			[]string{"Accept", "application/json;odata=minimalmetadata"}, 400, "odata.error", "invalid_filter"},
		{"verbose, bad KID", secretReader, "/api/ContentKeys('nb:kid:UUID:nope')",
			[]string{"Accept", verboseJSON, "DataServiceVersion", "3.0"}, 400, "error", reasonInvalidKID},
		{"verbose, no credential", "", "/API/ContentKeys",
			[]string{"Accept", verboseJSON}, 401, "error", "missing_credential"},
		{"verbose, role", secretReader, "/api/Assets('a')/$links/ContentKeys",
			[]string{"Content-Type", verboseJSON}, 403, "error", reasonRole},
	} {
		r := env.do(t, "GET", c.target, c.secret, "", c.hdr...)
		if strings.Contains(c.target, "$links") {
			r = env.do(t, "POST", c.target, c.secret, `{"uri":"ContentKeys('`+kid1+`')"}`, c.hdr...)
		}
		var body map[string]odataErr
		r.json(t, &body)
		e, ok := body[c.key]
		if r.status != c.status || !ok || len(body) != 1 || e.Code != c.code || e.Message.Lang != "en-US" || e.Message.Value == "" {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); strings.Contains(ct, "problem") {
			t.Errorf("%s: Content-Type %s", c.name, ct)
		}
		if c.status == 401 && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", c.name)
		}
	}
	// Without OData headers, and outside the AMS paths, problems as before.
	if r := env.do(t, "GET", "/api/ContentKeys('nb:kid:UUID:nope')", secretReader, "", "Accept", "application/json"); r.problem(t).Reason != reasonInvalidKID {
		t.Errorf("plain JSON: %s", r.body)
	}
	if r := env.do(t, "GET", "/api/keys/nope", secretReader, "", "Accept", verboseJSON); r.problem(t).Reason != reasonInvalidKID {
		t.Errorf("native API: %s", r.body)
	}
}

// TestAMSVerboseDatesAndNames: verbose answers write Edm.DateTime as
// \/Date(ms)\/; Name takes 4000 characters; AuthorizationPolicyId is kept.
func TestAMSVerboseDatesAndNames(t *testing.T) {
	env, keys := newAMSEnv(t)
	cert, _ := protectionPair()
	kid, _ := keystore.ParseKeyID(kid1)
	name := strings.Repeat("é", 3000) + strings.Repeat("𝄞", 500) // 3000 + 1000 UTF-16 code units: 4000
	r := env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, cert.PublicKey.(*rsa.PublicKey), ams.ProtectionKeyID(cert), kid, [16]byte{5},
		map[string]any{"Name": name, "AuthorizationPolicyId": "nb:ckpid:UUID:7e2a5d41-a5d6-4b3c-8f6e-2f0d3c4b5a69"}), "Accept", verboseJSON)
	if r.status != 201 {
		t.Fatalf("create: %d %.300s", r.status, r.body)
	}
	if !strings.Contains(string(r.body), `"Created":"\/Date(`) {
		t.Errorf("verbose Created is not \\/Date(ms)\\/: %.300s", r.body)
	}
	stored, err := keys.Metadata(context.Background(), kid)
	if err != nil || stored.Name != name || stored.AuthorizationPolicyID != "nb:ckpid:UUID:7e2a5d41-a5d6-4b3c-8f6e-2f0d3c4b5a69" {
		t.Fatalf("stored %v %q", err, stored.AuthorizationPolicyID)
	}
	r = env.do(t, "GET", "/api/ContentKeys('"+kid1+"')", secretReader, "", "Accept", verboseJSON)
	var v struct {
		D map[string]any `json:"d"`
	}
	r.json(t, &v)
	want := "/Date(" + itoa(stored.Created.UnixMilli()) + ")/"
	if v.D["Created"] != want || v.D["LastModified"] != "/Date("+itoa(stored.Updated.UnixMilli())+")/" || v.D["AuthorizationPolicyId"] != stored.AuthorizationPolicyID {
		t.Errorf("verbose get: Created %v, want %s; %v", v.D["Created"], want, v.D["AuthorizationPolicyId"])
	}
	r = env.do(t, "GET", "/api/ContentKeys('"+kid1+"')", secretReader, "")
	var plain map[string]any
	r.json(t, &plain)
	if ts, err := time.Parse(time.RFC3339Nano, plain["Created"].(string)); err != nil || !ts.Equal(stored.Created) {
		t.Errorf("plain Created %v", plain["Created"])
	}
	// One character more is refused, naming Name as AMS spells it.
	var other keystore.KeyID
	_, _ = rand.Read(other[:])
	r = env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, cert.PublicKey.(*rsa.PublicKey), ams.ProtectionKeyID(cert), other, [16]byte{6},
		map[string]any{"Name": name + "x"}))
	if p := r.problem(t); r.status != 400 || p.Reason != "invalid_name" || !strings.Contains(p.Detail, `"Name"`) || !strings.Contains(p.Detail, "4000 characters") {
		t.Errorf("4001 characters: %d %s", r.status, r.body)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"Name eq 'a'", "Name eq 'it''s' and (ContentKeyType eq 4 or Id ne null)", "((", "'", "ProtectionKeyId eq null", "-1 eq ContentKeyType"} {
		f.Add(s)
	}
	k := keystore.Key{Name: "a", Type: 4}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseFilter(s)
		if err == nil {
			e.match(&k, "AB") // never panics
		}
	})
}
