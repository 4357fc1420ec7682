package amsapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/keydelivery/keydelivery/internal/httpedge"
)

// odataRequested reports whether a request asks for OData JSON, as AMS
// clients do: an Accept or Content-Type with an odata= parameter
// (odata=verbose, odata=minimalmetadata...), or the OData protocol
// version headers (DataServiceVersion, MaxDataServiceVersion) that every
// OData client sends.
func odataRequested(r *http.Request) bool {
	for _, h := range []string{"Accept", "Content-Type"} {
		if strings.Contains(strings.ToLower(strings.ReplaceAll(r.Header.Get(h), " ", "")), "odata=") {
			return true
		}
	}
	return r.Header.Get("DataServiceVersion") != "" || r.Header.Get("MaxDataServiceVersion") != ""
}

// amsPath reports whether u, as the client sent it, is a path of the AMS
// API: the ContentKeys and Assets entity sets and the protection key
// functions, under /api/ or /API/.
func amsPath(u *url.URL) bool {
	p := u.Path
	rest, ok := strings.CutPrefix(p, "/api/")
	if !ok {
		rest, ok = strings.CutPrefix(p, "/API/")
	}
	if !ok {
		return false
	}
	for _, set := range []string{odataContentKeys, odataAssets, "GetProtectionKey"} {
		if strings.HasPrefix(rest, set) {
			return true
		}
	}
	return false
}

// odataErrorBody is an OData v3 error: the problem's reason as code (its
// code when it has no reason), its detail as the message.
type odataErrorBody struct {
	Code    string `json:"code"`
	Message struct {
		Lang  string `json:"lang"`
		Value string `json:"value"`
	} `json:"message"`
}

// odataError answers the refusals of AMS requests that ask for OData JSON
// in OData's error shape instead of a problem document (see
// plane.ErrorBodyFunc): {"odata.error":{"code":...,"message":{"lang":
// "en-US","value":...}}} in JSON light, and {"error":{...}} in the verbose
// format, the two shapes OData v3 clients (WCF Data Services, the AMS .NET
// SDK) parse. The status, Retry-After and WWW-Authenticate stay.
func odataError(r *http.Request, u *url.URL, p *httpedge.Problem) (string, []byte, bool) {
	if !amsPath(u) || !odataRequested(r) {
		return "", nil, false
	}
	var e odataErrorBody
	e.Code = p.Reason
	if e.Code == "" {
		e.Code = p.Code
	}
	e.Message.Lang = "en-US"
	e.Message.Value = p.Detail
	if e.Message.Value == "" {
		e.Message.Value = p.Title
	}
	if isVerbose(r) {
		b, err := json.Marshal(map[string]odataErrorBody{"error": e})
		return verboseType, b, err == nil
	}
	b, err := json.Marshal(map[string]odataErrorBody{"odata.error": e})
	return "application/json;odata=minimalmetadata;charset=utf-8", b, err == nil
}
