package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/keystore"
)

// System names a DRM system whose licenses an issuer produces.
type System string

// The DRM systems with a license endpoint. ClearKey is built in; the others
// are served by a LicenseIssuer.
const (
	PlayReady System = "playready"
	Widevine  System = "widevine"
	FairPlay  System = "fairplay"
)

// Systems lists the systems served through a LicenseIssuer.
func Systems() []System { return []System{PlayReady, Widevine, FairPlay} }

// LicenseRequest is what a LicenseIssuer is handed once the delivery plane
// has verified the token, checked that it grants every requested key, and
// read every key from the store. The issuer decides nothing about access.
type LicenseRequest struct {
	System System
	// Challenge is the request body exactly as the player sent it: a
	// PlayReady SOAP challenge, a Widevine license request, a FairPlay SPC
	// (raw or as the form field spc=...).
	Challenge   []byte
	ContentType string
	// Keys are the requested keys, unsealed, in the order the request named
	// them. They are secrets: an issuer must not log them, and the slice is
	// wiped after Issue returns.
	Keys []keystore.Key
	// Claims are the verified token's claims.
	Claims auth.Claims
	// RequestID links the issuer's own log lines to the access log.
	RequestID string
}

// License is an issuer's answer, written to the player as is, but for
// Cache-Control (always no-store) and CORS headers (the delivery plane's).
type License struct {
	// Status defaults to 200.
	Status      int
	ContentType string
	Header      http.Header
	Body        []byte
}

// LicenseIssuer turns an entitled license request into a license: a vendor
// SDK integration, or a proxy to a vendor's license server. It is called
// concurrently, with a context that ends when the player goes away or the
// license timeout passes.
//
// To refuse with a status of its own (a challenge the vendor rejects, say),
// an issuer returns a *LicenseError; any other error answers 502
// license_issuer_failed and is logged (never sent to the player).
type LicenseIssuer interface {
	Issue(ctx context.Context, r *LicenseRequest) (*License, error)
}

// KeyIDReader is implemented by issuers that can read the requested key IDs
// from a challenge (for a system whose players do not put ?kid= in the
// license URL). The delivery plane calls it after the token has verified,
// when the URL names no kid; the IDs it returns still have to be granted by
// the token and stored before Issue is called.
type KeyIDReader interface {
	KeyIDs(challenge []byte) ([]keystore.KeyID, error)
}

// LicenseError is a refusal an issuer wants the player to see: a 4xx Status,
// a stable Reason (lower-case, underscores) and a Detail for a person. It
// must not carry key material.
type LicenseError struct {
	Status int
	Reason string
	Detail string
	Err    error // logged, never sent
}

func (e *LicenseError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("delivery: license refused (%d %s): %v", e.Status, e.Reason, e.Err)
	}
	return fmt.Sprintf("delivery: license refused (%d %s)", e.Status, e.Reason)
}

func (e *LicenseError) Unwrap() error { return e.Err }

// StubIssuer is the default issuer of every system: issuing real PlayReady,
// Widevine or FairPlay licenses needs the vendor's SDK and credentials. It
// answers 200 with a JSON document naming the keys the request was entitled
// to and saying that no issuer is configured, with the response header
// X-KeyDelivery-License-Issuer: stub. It never answers key material.
type StubIssuer struct{}

// StubHeader is the response header that marks a stub answer.
const StubHeader = "X-KeyDelivery-License-Issuer"

type stubAnswer struct {
	System   System   `json:"system"`
	Licensed bool     `json:"licensed"`
	Issuer   string   `json:"issuer"`
	Message  string   `json:"message"`
	KIDs     []string `json:"kids"`
}

// Issue implements LicenseIssuer.
func (StubIssuer) Issue(_ context.Context, r *LicenseRequest) (*License, error) {
	a := stubAnswer{
		System: r.System,
		Issuer: "stub",
		Message: fmt.Sprintf("no %s license issuer is configured on this server: the token and the keys were checked "+
			"and the request is entitled to the keys listed, but no license is issued", r.System),
		KIDs: make([]string, len(r.Keys)),
	}
	for i, k := range r.Keys {
		a.KIDs[i] = k.ID.String()
	}
	body, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return &License{
		ContentType: "application/json",
		Header:      http.Header{StubHeader: []string{"stub"}},
		Body:        body,
	}, nil
}
