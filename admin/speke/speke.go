package speke

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/keystore"
)

// Path is the SPEKE v2 endpoint on the admin listener.
const Path = "/speke/v2"

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 4 << 20
	DefaultMaxKeys      = 256
	DefaultUserAgent    = "keydelivery"
)

// Options configures the SPEKE API.
type Options struct {
	// PublicURL is the delivery plane's base URL as players see it: the
	// license and key URLs of the signaling (PlayReady LA_URL, FairPlay
	// skd://, HLS AES-128 key URI, ClearKey license URL) are under it.
	// Default none: a request that needs one answers 501.
	PublicURL string
	// WidevineProvider is the provider field of the Widevine header the
	// Widevine PSSH carries (default none: the field is left out).
	WidevineProvider string
	// UserAgent is the X-Speke-User-Agent of every answer (default
	// "keydelivery").
	UserAgent string
	// Rand supplies the IVs the key provider is asked for and the document
	// and MAC keys of encrypted answers (default crypto/rand.Reader). The
	// content keys themselves come from the key store's random source.
	Rand io.Reader
	// MaxBodyBytes caps a request document (default 4 MiB).
	MaxBodyBytes int64
	// MaxKeys caps the ContentKeys of one request (default 256).
	MaxKeys int
}

// opRequest is the one operation: it creates the keys a request names that
// the store does not hold, so it writes (and is audited as started first).
var opRequest = plane.Operation{Name: "speke.v2", Perm: credentials.SPEKE, Writes: true}

// api serves SPEKE. It holds no key store: its operation reaches the store
// through its plane.Call only.
type api struct {
	publicURL string
	provider  string
	userAgent string
	rand      io.Reader
	maxBody   int64
	maxKeys   int
}

// Register mounts POST /speke/v2 on p, behind the admin credentials
// (Bearer or Basic) with plain-text refusals.
func Register(p *plane.Plane, o Options) error {
	if p == nil {
		return errors.New("speke: no plane")
	}
	a := &api{publicURL: o.PublicURL, provider: o.WidevineProvider, userAgent: o.UserAgent, rand: o.Rand,
		maxBody: o.MaxBodyBytes, maxKeys: o.MaxKeys}
	if a.userAgent == "" {
		a.userAgent = DefaultUserAgent
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	if a.maxKeys <= 0 {
		a.maxKeys = DefaultMaxKeys
	}
	p.Protect("/speke/", true)
	p.Handle(http.MethodPost, Path, opRequest, a.serve)
	return nil
}

// Media types of a CPIX document.
var xmlTypes = []string{"application/xml", "text/xml", "application/cpix+xml"}

// serve answers one SPEKE v2 request: the request document with the keys
// and the signaling filled in.
func (a *api) serve(c *plane.Call) (plane.Answer, error) {
	// "In SPEKE v2 workflows, the key provider is expected to process CPIX
	// documents only if it supports both version parameters" (SPEKE API
	// v2); the answer for another version is MediaPackage's documented
	// "Unsupported SPEKE version".
	version := c.Header("X-Speke-Version")
	if version != spekeVersion20 && version != spekeVersion21 {
		return plane.Answer{}, a.textError(version, refuse("unsupported_speke_version", "Unsupported SPEKE version"))
	}
	ans, err := a.answer(c, version)
	if err != nil {
		return plane.Answer{}, a.textError(version, err)
	}
	return ans, nil
}

// textError adds the SPEKE headers to a refusal in plain text.
func (a *api) textError(version string, err error) error {
	var te *plane.TextError
	if !errors.As(err, &te) {
		return err
	}
	if version == spekeVersion20 || version == spekeVersion21 {
		te.Header = append(te.Header, [2]string{"X-Speke-Version", version})
	}
	te.Header = append(te.Header, [2]string{"X-Speke-User-Agent", a.userAgent})
	return te
}

func (a *api) answer(c *plane.Call, version string) (plane.Answer, error) {
	if ct := c.Header("Content-Type"); ct != "" && !slices.Contains(xmlTypes, c.MediaType()) {
		return plane.Answer{}, &plane.TextError{Status: http.StatusUnsupportedMediaType, Reason: "unsupported_media_type",
			Text: "Unsupported Content-Type: send the CPIX document as application/xml"}
	}
	tooLarge := &plane.TextError{Status: http.StatusRequestEntityTooLarge, Reason: plane.ReasonBodyTooLarge,
		Text: fmt.Sprintf("The CPIX document is larger than %d bytes", a.maxBody)}
	root, err := cpix.ParseTree(c.Body(a.maxBody), a.maxBody)
	var mbe *http.MaxBytesError
	var re *cpix.ReadError
	switch {
	case errors.Is(err, cpix.ErrTooLarge), errors.As(err, &mbe):
		return plane.Answer{}, tooLarge
	case errors.As(err, &re):
		return plane.Answer{}, &plane.TextError{Status: http.StatusBadRequest, Reason: "invalid_cpix",
			Text: "Invalid CPIX document: " + re.Problems[0].Detail}
	case err != nil:
		return plane.Answer{}, &plane.TextError{Status: http.StatusBadRequest, Reason: "invalid_body", Text: "The request body could not be read"}
	}
	req, err := parseRequest(root, version, a.maxKeys)
	if err != nil {
		return plane.Answer{}, err
	}
	kids := make([]keystore.KeyID, len(req.keys))
	for i, k := range req.keys {
		kids[i] = k.id
	}
	c.Name(kids...)
	cred := c.Credential()
	if !cred.AllowsContent(req.contentID) {
		return plane.Answer{}, &plane.TextError{Status: http.StatusForbidden, Reason: "content_not_allowed",
			Text: fmt.Sprintf("This credential may not ask for the keys of content %s", quote(req.contentID, maxContentIDQuoted))}
	}
	enc, err := newEncryption(req, a.rand)
	if err != nil {
		return plane.Answer{}, err
	}
	defer enc.wipe()
	w, err := c.Begin(kids...)
	if err != nil {
		return plane.Answer{}, err
	}
	s := &signer{req: req, publicURL: a.publicURL, provider: a.provider,
		values: make(map[keystore.KeyID][16]byte, len(req.keys)), ivs: map[keystore.KeyID][]byte{}}
	defer func() {
		for id, v := range s.values {
			clear(v[:])
			delete(s.values, id)
		}
	}()
	for _, k := range req.keys {
		key, err := a.resolve(c.Context(), w, req, k)
		if err != nil {
			return plane.Answer{}, err
		}
		s.values[k.id] = key.Value
		clear(key.Value[:])
		if iv := ivOf(k, &key); iv != nil {
			s.ivs[k.id] = iv
		}
	}
	if err := s.fill(); err != nil {
		return plane.Answer{}, err
	}
	if err := fillKeys(req, s, enc); err != nil {
		return plane.Answer{}, err
	}
	var buf bytes.Buffer
	if err := root.WriteDocument(&buf); err != nil {
		clear(buf.Bytes())
		return plane.Answer{}, err
	}
	return plane.Blob(http.StatusOK, "application/xml", buf.Bytes()).Wiped().
		With("X-Speke-Version", version).With("X-Speke-User-Agent", a.userAgent), nil
}

// resolve finds or creates the key k: a KID the store holds under this
// content is answered with the stored key (so the same request twice
// answers the same keys); one it does not hold is created with a random
// value, recorded under the content (its asset), key period and track
// type. A KID stored for another content, or for none, is refused: a
// packager gets only the keys of the contents it asks for (and may be
// limited to), never another content's key by naming its KID.
func (a *api) resolve(ctx context.Context, w plane.Writer, req *request, k *contentKey) (keystore.Key, error) {
	for attempt := 0; ; attempt++ {
		key, err := w.Get(ctx, k.id)
		switch {
		case err == nil:
			if !slices.Contains(key.Assets, req.contentID) {
				clear(key.Value[:])
				return keystore.Key{}, refuse("other_content", "ContentKey %s belongs to another content: a KID is used for one content only", k.id)
			}
			return key, nil
		case errors.Is(err, keystore.ErrDeleted):
			return keystore.Key{}, refuse("deleted_key", "ContentKey %s is deleted: restore it, or use another KID", k.id)
		case !errors.Is(err, keystore.ErrNotFound):
			return keystore.Key{}, plane.OnKey(k.id, err)
		case attempt > 0:
			// Created and gone between two reads: a concurrent purge.
			return keystore.Key{}, plane.OnKey(k.id, err)
		}
		nk := keystore.Key{ID: k.id, Type: keyType(k), Assets: []string{req.contentID}, TrackType: k.trackType}
		if p := k.period; p != nil {
			nk.Period = &keystore.KeyPeriod{Index: p.index, Start: p.start, End: p.end}
		}
		switch {
		case k.iv != nil:
			nk.IV = k.iv
		case k.ivAsked:
			nk.IV = make([]byte, 16)
			if _, err := io.ReadFull(a.rand, nk.IV); err != nil {
				return keystore.Key{}, fmt.Errorf("speke: generate an IV: %w", err)
			}
		}
		created, err := w.Create(ctx, nk)
		if err == nil {
			return created, nil
		}
		if !errors.Is(err, keystore.ErrExists) {
			return keystore.Key{}, plane.OnKey(k.id, err)
		}
		// Another request created it meanwhile: read it, as a repeat.
	}
}

// keyType is the AMS content key type of a new key: envelope when HLS
// AES-128 uses it, else common encryption.
func keyType(k *contentKey) keystore.ContentKeyType {
	for _, d := range k.systems {
		if d.system.id == systemHLSAES128 {
			return keystore.EnvelopeEncryption
		}
	}
	return keystore.CommonEncryption
}

// ivOf is the IV the answer gives for k: the request's explicitIV, else
// the stored key's IV (SPEKE: "The key provider can respond with an IV
// using @explicitIV, even if the attribute is not included in the
// request"), else, when the request asks for one (an empty explicitIV) of
// a key stored without an IV, one derived from the key and the KID, so
// that the same request always gets the same IV; else none.
func ivOf(k *contentKey, key *keystore.Key) []byte {
	switch {
	case k.iv != nil:
		return k.iv
	case key.IV != nil:
		return key.IV
	case k.ivAsked:
		return derivedIV(key)
	}
	return nil
}

// derivedIV is HMAC-SHA256(key, "keydelivery/speke/iv" || KID), cut to 16
// bytes: an IV is public (it goes into playlists), and an HMAC output says
// nothing about its key.
func derivedIV(key *keystore.Key) []byte {
	m := hmac.New(sha256.New, key.Value[:])
	m.Write([]byte("keydelivery/speke/iv"))
	m.Write(key.ID[:])
	return m.Sum(nil)[:16]
}

// fillKeys gives every ContentKey its key: Data/pskc:Secret with the value
// in PlainValue, or encrypted for the recipients (enc), and its explicitIV
// when it has one.
func fillKeys(req *request, s *signer, enc *encryption) error {
	for _, k := range req.keys {
		for _, d := range k.el.ChildElements(nsCPIX, elData) {
			k.el.Remove(d)
		}
		if iv := s.ivs[k.id]; iv != nil {
			k.el.SetAttr("explicitIV", b64(iv))
		}
		value := s.values[k.id]
		secret, err := enc.secret(value[:])
		clear(value[:])
		if err != nil {
			return err
		}
		data := cpix.NewElement(nsCPIX, elData)
		data.Append(secret)
		k.el.Append(data)
	}
	return nil
}
