package amsapi

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// Seed 001 (shared/seeds/001): the AMS v2 ContentKey REST API. Every
// sample request of the page is a test here, taken as it stands: its
// method, URL (media.windows.net, /api/ or /API/), headers and body. The
// ACS bearer token of the samples is not a credential of this server, so
// each sample is sent once as it stands (401, in the OData error shape the
// sample asks for) and once with this server's credential in its place.

// seedACSToken is the samples' Authorization value.
const seedACSToken = "Bearer http%3a%2f%2fschemas.xmlsoap.org%2fws%2f2005%2f05%2fidentity%2fclaims%2fnameidentifier=070500D0-F35C-4A5A-9249-485BBF4EC70B&http%3a%2f%2fschemas.microsoft.com%2faccesscontrolservice%2f2010%2f07%2fclaims%2fidentityprovider=https%3a%2f%2fwamsprodglobal001acs.accesscontrol.windows.net%2f&Audience=urn%3aWindowsAzureMediaServices&ExpiresOn=1334276569&Issuer=https%3a%2f%2fwamsprodglobal001acs.accesscontrol.windows.net%2f&HMACSHA256=Cax61TKgo%2fLo5k6AWA%2brOLdAbMMd4poqvpVqiRPdTXk%3d"

// seedCreateBody is the "Create a ContentKey" sample body, as it stands.
const seedCreateBody = `{"Id" : "nb:kid:UUID:316d14d4-b603-4d90-b8db-0fede8aa48f8", "ContentKeyType" : 1, "EncryptedContentKey" : "Y4NPej7heOFa2vsd8ZEOcjjpu/qOq3RJ6GRfxa8CCwtAM83d6J2mKOeQFUmMyVXUSsBCCOdufmieTKi+hOUtNAbyNM4lY4AXI537b9GaY8oSeje0NGU8+QCOuf7jGdRac5B9uIk7WwD76RAJnqyep6U/OdvQV4RLvvZ9w7nO4bY8RHaUaLxC2u4aIRRaZtLu5rm8GKBPy87OzQVXNgnLM01I8s3Z4wJ3i7jXqkknDy4VkIyLBSQvIvUzxYHeNdMVWDmS+jPN9ScVmolUwGzH1A23td8UWFHOjTjXHLjNm5Yq+7MIOoaxeMlKPYXRFKofRY8Qh5o5tqvycSAJ9KUqfg==", "ProtectionKeyId" : "7D9BB04D9D0A4A24800CADBFEF232689E048F69C", "ProtectionKeyType" : 1, "Checksum" : "TfXtjCIlq1Y=" }`

// seedVerboseHeaders are the headers of the create, get and delete samples
// (Authorization aside).
func seedVerboseHeaders(auth string) []string {
	return []string{"Content-Type", "application/json;odata=verbose", "Accept", "application/json;odata=verbose",
		"DataServiceVersion", "3.0", "MaxDataServiceVersion", "3.0", "x-ms-version", "2.11", "Authorization", auth}
}

// odataErrorOf reads an OData error answer: {"error":...} (verbose) or
// {"odata.error":...}.
func odataErrorOf(t *testing.T, r response, key string) odataErrorBody {
	t.Helper()
	var body map[string]odataErrorBody
	if err := json.Unmarshal(r.body, &body); err != nil || len(body) != 1 {
		t.Fatalf("not an OData error: %d %s", r.status, r.body)
	}
	e, ok := body[key]
	if !ok || e.Message.Lang != "en-US" || e.Message.Value == "" {
		t.Fatalf("OData error without %q: %s", key, r.body)
	}
	return e
}

// TestSeed001CreateSample: POST https://media.windows.net/api/ContentKeys
// with the sample's headers and body. As it stands: 401 (an ACS token);
// with this server's credential: 400 unknown_protection_key, since the
// sample's EncryptedContentKey is encrypted to its AMS account's protection
// certificate (7D9BB04D...), whose private key only AMS had; nothing is
// stored. The sample's shape with this server's certificate: 201.
func TestSeed001CreateSample(t *testing.T) {
	env, keys := newAMSEnv(t)
	const url = "https://media.windows.net/api/ContentKeys"
	r := env.do(t, "POST", url, "", seedCreateBody, append(seedVerboseHeaders(seedACSToken), "Expect", "100-continue")...)
	if e := odataErrorOf(t, r, "error"); r.status != 401 || e.Code != "invalid_credential" || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("as it stands: %d %s", r.status, r.body)
	}
	r = env.do(t, "POST", url, "", seedCreateBody, seedVerboseHeaders("Bearer "+secretWriter)...)
	if e := odataErrorOf(t, r, "error"); r.status != 400 || e.Code != "unknown_protection_key" || !strings.Contains(e.Message.Value, "GetProtectionKeyId") {
		t.Errorf("with a credential: %d %s", r.status, r.body)
	}
	if ks, _ := keys.List(context.Background(), keystore.KeyID{}, 10); len(ks) != 0 {
		t.Fatalf("stored %d keys", len(ks))
	}
	// The sample's values but what only AMS could compute: the key
	// encrypted to this server's certificate, its thumbprint, the checksum.
	cert, _ := protectionPair()
	var sample map[string]any
	if err := json.Unmarshal([]byte(seedCreateBody), &sample); err != nil {
		t.Fatal(err)
	}
	kid, _ := keystore.ParseKeyID(sample["Id"].(string))
	key := [16]byte{0x31, 0x6d, 0x14, 0xd4}
	body := amsBody(t, cert.PublicKey.(*rsa.PublicKey), ams.ProtectionKeyID(cert), kid, key,
		map[string]any{"ContentKeyType": sample["ContentKeyType"], "ProtectionKeyType": sample["ProtectionKeyType"], "Name": nil})
	r = env.do(t, "POST", url, "", body, seedVerboseHeaders("Bearer "+secretWriter)...)
	if r.status != 201 {
		t.Fatalf("the sample's shape: %d %s", r.status, r.body)
	}
	var v struct {
		D map[string]any `json:"d"`
	}
	r.json(t, &v)
	if v.D["Id"] != sample["Id"] || v.D["ContentKeyType"] != float64(1) || v.D["Checksum"] != playready.Checksum(key, kid) || v.D["__metadata"] == nil {
		t.Errorf("answer %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != entityPath(kid) {
		t.Errorf("Location %q", loc)
	}
}

// TestSeed001GetKeyDeliveryURLSample: POST
// .../ContentKeys('nb:kid:UUID:14e7e815-...')/GetKeyDeliveryUrl with
// {"keyDeliveryType":1} and the sample's headers (JSON light). 200 and the
// PlayReady license URL under --public-url: with the sample account's host,
// https://account001.keydelivery.mediaservices.windows.net/playready/license
// (the delivery plane answers the sample's /PlayReady/ too).
func TestSeed001GetKeyDeliveryURLSample(t *testing.T) {
	env, _ := newRealEnv(t, func(o *testOptions) { o.PublicURL = "https://account001.keydelivery.mediaservices.windows.net" })
	const kid = "14e7e815-5db3-4027-9578-a55a416a3367"
	if r := env.do(t, "POST", "/api/keys", secretWriter, `{"id":"nb:kid:UUID:`+kid+`"}`); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	const url = "https://media.windows.net/api/ContentKeys('nb:kid:UUID:" + kid + "')/GetKeyDeliveryUrl"
	headers := func(auth string) []string {
		return []string{"MaxDataServiceVersion", "3.0;NetFx", "Accept", "application/json", "Accept-Charset", "UTF-8",
			"User-Agent", "Microsoft ADO.NET Data Services", "Authorization", auth, "x-ms-version", "2.9", "Content-Type", "application/json"}
	}
	r := env.do(t, "POST", url, "", `{"keyDeliveryType":1}`, headers(seedACSToken)...)
	if e := odataErrorOf(t, r, "odata.error"); r.status != 401 || e.Code != "invalid_credential" {
		t.Errorf("as it stands: %d %s", r.status, r.body)
	}
	r = env.do(t, "POST", url, "", `{"keyDeliveryType":1}`, headers("Bearer "+secretReader)...)
	if got := strings.TrimSpace(string(r.body)); r.status != 200 || got != `{"value":"https://account001.keydelivery.mediaservices.windows.net/playready/license"}` {
		t.Errorf("with a credential: %d %s", r.status, r.body)
	}
}

// TestSeed001GetAndDeleteSamples: GET and DELETE
// https://media.windows.net/API/ContentKeys('nb:kid:UUID:58b522a5-...')
// with the samples' verbose headers.
func TestSeed001GetAndDeleteSamples(t *testing.T) {
	env, keys := newAMSEnv(t)
	const kid = "58b522a5-be4e-4988-8958-ee0cdb179273"
	const url = "https://media.windows.net/API/ContentKeys('nb:kid:UUID:" + kid + "')"
	if r := env.do(t, "POST", "/api/keys", secretWriter, `{"id":"`+kid+`","name":"sample","type":1}`); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r := env.do(t, "GET", url, "", "", seedVerboseHeaders(seedACSToken)...)
	if e := odataErrorOf(t, r, "error"); r.status != 401 || e.Code != "invalid_credential" {
		t.Errorf("GET as it stands: %d %s", r.status, r.body)
	}
	r = env.do(t, "GET", url, "", "", seedVerboseHeaders("Bearer "+secretReader)...)
	var v struct {
		D map[string]any `json:"d"`
	}
	r.json(t, &v)
	props := slices.Sorted(maps.Keys(v.D))
	want := []string{"AuthorizationPolicyId", "Checksum", "ContentKeyType", "Created", "EncryptedContentKey", "Id", "LastModified", "Name", "ProtectionKeyId", "ProtectionKeyType", "__metadata"}
	if r.status != 200 || !slices.Equal(props, want) || v.D["Id"] != "nb:kid:UUID:"+kid || v.D["ContentKeyType"] != float64(1) ||
		!strings.HasPrefix(v.D["Created"].(string), "/Date(") || !strings.Contains(string(r.body), `"Created":"\/Date(`) {
		t.Fatalf("GET: %d %s (properties %v)", r.status, r.body, props)
	}
	r = env.do(t, "DELETE", url, "", "", append(seedVerboseHeaders(seedACSToken), "Content-Length", "0")...)
	if e := odataErrorOf(t, r, "error"); r.status != 401 || e.Code != "invalid_credential" {
		t.Errorf("DELETE as it stands: %d %s", r.status, r.body)
	}
	r = env.do(t, "DELETE", url, "", "", append(seedVerboseHeaders("Bearer "+secretWriter), "Content-Length", "0")...)
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	id, _ := keystore.ParseKeyID(kid)
	if m, err := keys.Metadata(context.Background(), id); err != nil || !m.Deleted() {
		t.Errorf("after DELETE: %+v %v", m, err)
	}
	r = env.do(t, "GET", url, "", "", seedVerboseHeaders("Bearer "+secretReader)...)
	if e := odataErrorOf(t, r, "error"); r.status != 404 || e.Code != "deleted" {
		t.Errorf("GET after DELETE: %d %s", r.status, r.body)
	}
}

// TestSeed001RequestURIs: every method and request URI of the page's
// tables, in the page's /API/ spelling on media.windows.net.
func TestSeed001RequestURIs(t *testing.T) {
	env, _ := newAMSEnv(t)
	cert, _ := protectionPair()
	const kid = "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	id, _ := keystore.ParseKeyID(kid)
	asset := "nb:cid:UUID:9bc8ff20-24fb-4fdb-9d7c-b04c7ee573a1"
	for _, c := range []struct {
		method, uri, body, secret string
		status                    int
	}{
		{"POST", "https://media.windows.net/API/ContentKeys", amsBody(t, cert.PublicKey.(*rsa.PublicKey), ams.ProtectionKeyID(cert), id, [16]byte{1}, nil), secretWriter, 201},
		{"POST", "https://media.windows.net/api/Assets('" + asset + "')/$links/ContentKeys", `{"uri":"https://media.windows.net/api/ContentKeys('nb%3Akid%3AUUID%3A` + kid + `')"}`, secretWriter, 204},
		{"POST", "https://media.windows.net/api/ContentKeys('nb:kid:UUID:" + kid + "')/GetKeyDeliveryUrl", `{"keyDeliveryType":2}`, secretReader, 200},
		{"GET", "https://media.windows.net/API/ContentKeys", "", secretReader, 200},
		{"GET", "https://media.windows.net/API/ContentKeys('nb:kid:UUID:" + kid + "')", "", secretReader, 200},
		{"GET", "https://media.windows.net/API/Assets('" + asset + "')/ContentKeys", "", secretReader, 200},
		{"DELETE", "https://media.windows.net/API/ContentKeys('nb:kid:UUID:" + kid + "')", "", secretWriter, 204},
	} {
		r := env.do(t, c.method, c.uri, c.secret, c.body)
		if r.status != c.status {
			t.Errorf("%s %s: %d %s", c.method, c.uri, r.status, r.body)
		}
		if c.method == "GET" && strings.HasSuffix(c.uri, "/ContentKeys") && !strings.Contains(string(r.body), kid) {
			t.Errorf("%s lists no key: %s", c.uri, r.body)
		}
	}
}

// TestSeed001Properties: the entity property table. Name, EncryptedContentKey,
// ProtectionKeyId and Checksum are at most 4000 long (Name is stored up to
// that; the others are checked against what they must be); ContentKeyType
// takes the four listed values; AuthorizationPolicyId is kept.
func TestSeed001Properties(t *testing.T) {
	env, keys := newAMSEnv(t)
	cert, _ := protectionPair()
	pub, thumb := cert.PublicKey.(*rsa.PublicKey), ams.ProtectionKeyID(cert)
	for i, typ := range []int{0, 1, 2, 4} { // CommonEncryption, StorageEncryption, ConfigurationEncryption, EnvelopeEncryption
		var id keystore.KeyID
		id[0], id[15] = byte(i+1), 7
		r := env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, pub, thumb, id, [16]byte{byte(i + 1)},
			map[string]any{"ContentKeyType": typ, "Name": strings.Repeat("n", 4000), "AuthorizationPolicyId": "nb:ckpid:UUID:policy-" + string(rune('a'+i))}))
		if r.status != 201 {
			t.Fatalf("ContentKeyType %d: %d %.200s", typ, r.status, r.body)
		}
		k, err := keys.Metadata(context.Background(), id)
		if err != nil || int(k.Type) != typ || len(k.Name) != 4000 || k.AuthorizationPolicyID != "nb:ckpid:UUID:policy-"+string(rune('a'+i)) {
			t.Errorf("ContentKeyType %d stored: %v %d %q", typ, err, len(k.Name), k.AuthorizationPolicyID)
		}
	}
	var id keystore.KeyID
	id[0] = 0x99
	long := strings.Repeat("A", 4001)
	for name, c := range map[string]struct {
		extra  map[string]any
		reason string
	}{
		"Name of 4001":                {map[string]any{"Name": long}, "invalid_name"},
		"EncryptedContentKey of 4001": {map[string]any{"EncryptedContentKey": long}, "invalid_EncryptedContentKey"},
		"ProtectionKeyId of 4001":     {map[string]any{"ProtectionKeyId": long}, "unknown_protection_key"},
		"Checksum of 4001":            {map[string]any{"Checksum": long}, "checksum_mismatch"},
		"ContentKeyType 3":            {map[string]any{"ContentKeyType": 3}, "invalid_ContentKeyType"},
		"ProtectionKeyType 2":         {map[string]any{"ProtectionKeyType": 2}, "invalid_ProtectionKeyType"},
	} {
		r := env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, pub, thumb, id, [16]byte{9}, c.extra))
		if p := r.problem(t); r.status != 400 || p.Reason != c.reason {
			t.Errorf("%s: %d %.300s", name, r.status, r.body)
		}
	}
}
