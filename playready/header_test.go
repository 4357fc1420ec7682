package playready

import (
	"encoding/base64"
	"strings"
	"testing"
)

// testKID and its PlayReady spelling: the KID's GUID layout in base64.
var (
	testKID       = [16]byte{0x0a, 0x4f, 0x6e, 0x08, 0xb4, 0xe5, 0x4a, 0x25, 0x9c, 0x4b, 0x6e, 0x3e, 0x4a, 0x2c, 0x1d, 0x7d}
	testKIDHeader = "CG5PCuW0JUqcS24+SiwdfQ=="
	otherKID      = [16]byte{0x33, 0x9c, 0x45, 0xb5, 0xfb, 0x6d, 0x4b, 0xd9, 0x99, 0x4c, 0xea, 0xbd, 0x9d, 0x41, 0xc9, 0x5b}
)

func headerValue(kid [16]byte) string {
	g := GUID(kid)
	return base64.StdEncoding.EncodeToString(g[:])
}

func TestHeaderKIDs(t *testing.T) {
	if headerValue(testKID) != testKIDHeader {
		t.Fatalf("test vector: %s", headerValue(testKID))
	}
	other := headerValue(otherKID)
	tests := []struct {
		name string
		doc  string
		want [][16]byte
	}{
		{"4.0 KID text", `<WRMHEADER version="4.0.0.0"><DATA><KID>` + testKIDHeader + `</KID></DATA></WRMHEADER>`, [][16]byte{testKID}},
		{"4.1 KID VALUE", `<WRMHEADER version="4.1.0.0"><DATA><PROTECTINFO><KID ALGID="AESCTR" VALUE="` + testKIDHeader + `"/></PROTECTINFO></DATA></WRMHEADER>`, [][16]byte{testKID}},
		{"4.3 KIDS", `<WRMHEADER version="4.3.0.0"><DATA><PROTECTINFO><KIDS><KID VALUE="` + testKIDHeader + `"/><KID VALUE="` + other + `"/></KIDS></PROTECTINFO></DATA></WRMHEADER>`, [][16]byte{testKID, otherKID}},
		{"inside a SOAP challenge", `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><AcquireLicense><challenge><Challenge><LA><ContentHeader><WRMHEADER xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader" version="4.0.0.0"><DATA><KID>` + testKIDHeader + `</KID></DATA></WRMHEADER></ContentHeader></LA></Challenge></challenge></AcquireLicense></soap:Body></soap:Envelope>`, [][16]byte{testKID}},
		{"the same KID twice", `<WRMHEADER><DATA><KID>` + testKIDHeader + `</KID><KID VALUE="` + testKIDHeader + `"/></DATA></WRMHEADER>`, [][16]byte{testKID}},
		{"KID outside the header is ignored", `<a><KID>` + testKIDHeader + `</KID></a>`, nil},
		{"empty", "  ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HeaderKIDs([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %x, want %x", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %x, want %x", got, tt.want)
				}
			}
		})
	}
}

func TestHeaderKIDsRefuses(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"not XML", "<WRMHEADER><DATA <"},
		{"KID not base64", `<WRMHEADER><DATA><KID>not base64!</KID></DATA></WRMHEADER>`},
		{"KID of 15 bytes", `<WRMHEADER><DATA><KID VALUE="` + base64.StdEncoding.EncodeToString(make([]byte, 15)) + `"/></DATA></WRMHEADER>`},
		{"too deep", strings.Repeat("<a>", maxDepth+1) + strings.Repeat("</a>", maxDepth+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := HeaderKIDs([]byte(tt.doc))
			if err == nil || ids != nil {
				t.Fatalf("accepted: %x, %v", ids, err)
			}
		})
	}
	long := strings.Repeat("A", 5000)
	_, err := HeaderKIDs([]byte(`<WRMHEADER><DATA><KID VALUE="` + long + `"/></DATA></WRMHEADER>`))
	if err == nil || strings.Contains(err.Error(), long[:100]) {
		t.Fatalf("a long bad KID is quoted whole: %v", err)
	}
}

// FuzzHeaderKIDs: the header reader never panics and only returns KIDs it
// found inside a WRMHEADER.
func FuzzHeaderKIDs(f *testing.F) {
	f.Add(`<WRMHEADER><DATA><KID>CG5PCuW0JUqcS24+SiwdfQ==</KID></DATA></WRMHEADER>`)
	f.Add(`<a><WRMHEADER version="4.3.0.0"><DATA><PROTECTINFO><KIDS><KID VALUE="CG5PCuW0JUqcS24+SiwdfQ=="/></KIDS></PROTECTINFO></DATA></WRMHEADER></a>`)
	f.Add(`<KID>CG5PCuW0JUqcS24+SiwdfQ==</KID>`)
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := HeaderKIDs([]byte(s))
		if err != nil && ids != nil {
			t.Fatal("IDs with an error")
		}
		if !strings.Contains(s, "WRMHEADER") && len(ids) > 0 {
			t.Fatalf("IDs outside a WRMHEADER: %v", ids)
		}
	})
}
