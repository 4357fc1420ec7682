package speke

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
	"github.com/keydelivery/keydelivery/pssh"
)

// system is a DRM system the key provider signals: its ID, the schemes it
// takes, and which DRMSystem children it fills.
type system struct {
	id      string // canonical lower-case UUID
	name    string
	schemes []string
	// fill writes the value of the DRMSystem child el (PSSH,
	// ContentProtectionData, ...) for the key, or reports that this system
	// has no such signaling (and the child is removed).
	fill func(s *signer, d *drmSystem, el *cpix.Element) (string, bool, error)
}

// The system IDs (DASH-IF, "Content Protection identifiers"; MediaPackage,
// "Container and DRM system support with SPEKE": its supported system IDs,
// 3ea8778f-... being "ClearKey AES-128", HLS envelope encryption).
const (
	systemWidevine  = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
	systemPlayReady = "9a04f079-9840-4286-ab92-e65be0885f95"
	systemFairPlay  = "94ce86fb-07ff-4f43-adb8-93d2fa968ca2"
	systemHLSAES128 = "3ea8778f-7742-4bf9-b18b-e834b2acbd47"
	systemCommon    = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
	systemClearKey  = "e2719d58-a985-b3c9-781a-b030af78d30e"
)

var systems = []*system{
	{id: systemWidevine, name: "Widevine", schemes: []string{"cenc", "cbc1", "cens", "cbcs", "SAMPLE-AES", "SAMPLE-AES-CTR"}, fill: fillWidevine},
	{id: systemPlayReady, name: "PlayReady", schemes: []string{"cenc", "cbc1", "cens", "cbcs", "SAMPLE-AES", "SAMPLE-AES-CTR"}, fill: fillPlayReady},
	{id: systemFairPlay, name: "FairPlay", schemes: []string{"cbcs", "SAMPLE-AES"}, fill: fillFairPlay},
	// HLS AES-128 is whole-segment AES-128-CBC whatever the scheme says:
	// MediaPackage sends its TS requests with the scheme it was given.
	{id: systemHLSAES128, name: "HLS AES-128", schemes: []string{"cenc", "cbc1", "cens", "cbcs", "AES-128"}, fill: fillHLSAES128},
	{id: systemCommon, name: "W3C common PSSH (ClearKey)", schemes: []string{"cenc", "cbc1", "cens", "cbcs"}, fill: fillClearKey},
	{id: systemClearKey, name: "DASH-IF ClearKey", schemes: []string{"cenc", "cbc1", "cens", "cbcs"}, fill: fillClearKey},
}

func lookupSystem(id string) *system {
	id = strings.ToLower(id)
	for _, s := range systems {
		if s.id == id {
			return s
		}
	}
	return nil
}

func supportedSystems() string {
	var b []string
	for _, s := range systems {
		b = append(b, s.id+" ("+s.name+")")
	}
	return strings.Join(b, ", ")
}

// signer computes the signaling of one request: the delivery URLs come from
// the public URL, the Widevine header's provider from the options.
type signer struct {
	req       *request
	publicURL string
	provider  string
	values    map[keystore.KeyID][16]byte
	ivs       map[keystore.KeyID][]byte
}

// errNoPublicURL: signaling that needs a URL on a server without
// --public-url.
func errNoPublicURL(sys string) error {
	return &plane.TextError{Status: http.StatusNotImplemented, Reason: "public_url_not_configured",
		Text: fmt.Sprintf("This server has no --public-url, so it cannot give the %s signaling its license or key URL: start it with --public-url", sys)}
}

func (s *signer) url(sys, typ string, id keystore.KeyID) (string, error) {
	if s.publicURL == "" {
		return "", errNoPublicURL(sys)
	}
	u, _ := plane.DeliveryURL(s.publicURL, typ, id)
	return u, nil
}

// fill fills every DRMSystem of the request.
func (s *signer) fill() error {
	for _, d := range s.req.systems {
		for _, el := range d.el.Elements() {
			if el.Space != nsCPIX {
				continue // another namespace's element: kept as it is
			}
			switch el.Local {
			case elPSSH, elContentProtection, elHLSSignaling, elSmoothStreaming, elURIExtXKey:
			default:
				continue
			}
			v, ok, err := d.system.fill(s, d, el)
			if err != nil {
				return err
			}
			if !ok {
				// Signaling this system does not have: AWS's verification
				// suite wants none ("PSSH is not expected in this
				// response" for FairPlay), so the empty element goes.
				d.el.Remove(el)
				continue
			}
			el.SetText(v)
		}
	}
	return nil
}

// xmlText escapes text for an XML element's content.
var xmlText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// hlsMethod is the EXT-X-KEY METHOD of a CENC scheme (RFC 8216bis §4.4.4.4:
// SAMPLE-AES for cbcs, SAMPLE-AES-CTR for cenc).
func hlsMethod(scheme string) string {
	switch scheme {
	case "cenc", "cens", "SAMPLE-AES-CTR":
		return "SAMPLE-AES-CTR"
	}
	return "SAMPLE-AES"
}

// playlistOf is HLSSignalingData@playlist: "media" (an EXT-X-KEY tag) or
// "master" (an EXT-X-SESSION-KEY tag); CPIX 2.3 makes media the default.
func playlistOf(el *cpix.Element) string {
	if p, _ := el.AttrValue("playlist"); p == playlistMaster {
		return playlistMaster
	}
	return playlistMedia
}

// hlsTag writes an HLS key tag for the playlist (RFC 8216 §4.3.2.4 EXT-X-KEY
// in a media playlist, §4.3.4.5 EXT-X-SESSION-KEY in the master playlist,
// which takes the same attributes), base64 as CPIX's HLSSignalingData is.
func hlsTag(playlist string, attrs ...string) string {
	tag := "#EXT-X-KEY:"
	if playlist == playlistMaster {
		tag = "#EXT-X-SESSION-KEY:"
	}
	return b64([]byte(tag + strings.Join(attrs, ",")))
}

func quoted(name, v string) string { return name + `="` + v + `"` }

func (s *signer) ivAttr(id keystore.KeyID) []string {
	if iv := s.ivs[id]; iv != nil {
		return []string{"IV=0x" + strings.ToUpper(hex.EncodeToString(iv))}
	}
	return nil
}

func fourCC(scheme string) uint32 {
	n, err := pssh.FourCC(scheme)
	if err != nil {
		return 0 // the HLS methods of CPIX 2.4 have no FourCC
	}
	return n
}

// widevinePSSH is the Widevine pssh box of a key: version 0, as Shaka
// Packager writes it ("Use version 0 for backward compatibility",
// widevine_pssh_generator.cc), with the Widevine header naming the KID, the
// content ID (the CPIX contentId), the provider when configured and the
// protection scheme.
func (s *signer) widevinePSSH(d *drmSystem) ([]byte, error) {
	wd := &pssh.WidevineData{KeyIDs: [][16]byte{d.key.id}, Provider: s.provider, ContentID: []byte(s.req.contentID),
		ProtectionScheme: fourCC(d.key.scheme)}
	return (&pssh.Box{SystemID: pssh.Widevine, Data: wd.Marshal()}).Marshal()
}

// cencPSSH is the ContentProtectionData of a system whose DASH signaling is
// its pssh box: the cenc:pssh element of ISO/IEC 23009-1 / CENC (namespace
// urn:mpeg:cenc:2013), as the reference SPEKE server writes it.
func cencPSSH(box []byte) string {
	return `<cenc:pssh xmlns:cenc="urn:mpeg:cenc:2013">` + b64(box) + `</cenc:pssh>`
}

func fillWidevine(s *signer, d *drmSystem, el *cpix.Element) (string, bool, error) {
	box, err := s.widevinePSSH(d)
	if err != nil {
		return "", false, err
	}
	switch el.Local {
	case elPSSH:
		return b64(box), true, nil
	case elContentProtection:
		return b64([]byte(cencPSSH(box))), true, nil
	case elHLSSignaling, elURIExtXKey:
		// Widevine in HLS (Shaka Packager's simple_hls_notifier): the pssh
		// box as a data URI, the KEYID, and the system ID as KEYFORMAT.
		uri := "data:text/plain;base64," + b64(box)
		if el.Local == elURIExtXKey {
			return b64([]byte(uri)), true, nil
		}
		attrs := []string{"METHOD=" + hlsMethod(d.key.scheme), quoted("URI", uri),
			"KEYID=0x" + strings.ToUpper(hex.EncodeToString(d.key.id[:])), quoted("KEYFORMAT", "urn:uuid:"+systemWidevine), quoted("KEYFORMATVERSIONS", "1")}
		return hlsTag(playlistOf(el), attrs...), true, nil
	}
	return "", false, nil
}

// playReadyObject is the PlayReady Object of a key, with this server's
// PlayReady license route as LA_URL.
func (s *signer) playReadyObject(d *drmSystem) ([]byte, error) {
	la, err := s.url("PlayReady", "playready", d.key.id)
	if err != nil {
		return nil, err
	}
	alg := playready.AESCTR
	if slices.Contains([]string{"cbcs", "cbc1", "SAMPLE-AES"}, d.key.scheme) {
		alg = playready.AESCBC
	}
	h := &playready.Header{Keys: []playready.HeaderKey{{KID: d.key.id, Key: s.values[d.key.id]}}, AlgID: alg, LAURL: la}
	return h.Object()
}

func fillPlayReady(s *signer, d *drmSystem, el *cpix.Element) (string, bool, error) {
	pro, err := s.playReadyObject(d)
	if err != nil {
		return "", false, err
	}
	box, err := (&pssh.Box{SystemID: pssh.PlayReady, Data: pro}).Marshal()
	if err != nil {
		return "", false, err
	}
	switch el.Local {
	case elPSSH:
		return b64(box), true, nil
	case elContentProtection:
		// DASH: mspr:pro (the PlayReady Object, "DASH Content Protection
		// using Microsoft PlayReady") and the cenc:pssh box.
		x := `<mspr:pro xmlns:mspr="urn:microsoft:playready">` + b64(pro) + `</mspr:pro>` + cencPSSH(box)
		return b64([]byte(x)), true, nil
	case elSmoothStreaming:
		// The text of the Smooth Streaming ProtectionHeader element: the
		// base64 of the PlayReady Object.
		return b64(pro), true, nil
	case elHLSSignaling, elURIExtXKey:
		// PlayReady in HLS: the PlayReady Object as a UTF-16 data URI with
		// KEYFORMAT com.microsoft.playready (as Shaka Packager writes it).
		uri := "data:text/plain;charset=UTF-16;base64," + b64(pro)
		if el.Local == elURIExtXKey {
			return b64([]byte(uri)), true, nil
		}
		attrs := []string{"METHOD=" + hlsMethod(d.key.scheme), quoted("URI", uri), quoted("KEYFORMAT", "com.microsoft.playready"), quoted("KEYFORMATVERSIONS", "1")}
		return hlsTag(playlistOf(el), attrs...), true, nil
	}
	return "", false, nil
}

// fairPlayURI is the skd:// URI of a key: this server's FairPlay license
// route with its scheme replaced, which players map back to https (Apple,
// "FairPlay Streaming": the app reads the key URI of the EXT-X-KEY tag).
func (s *signer) fairPlayURI(d *drmSystem) (string, error) {
	u, err := s.url("FairPlay", "fairplay", d.key.id)
	if err != nil {
		return "", err
	}
	_, rest, _ := strings.Cut(u, "://")
	return "skd://" + rest, nil
}

func fillFairPlay(s *signer, d *drmSystem, el *cpix.Element) (string, bool, error) {
	switch el.Local {
	case elHLSSignaling, elURIExtXKey:
		uri, err := s.fairPlayURI(d)
		if err != nil {
			return "", false, err
		}
		if el.Local == elURIExtXKey {
			return b64([]byte(uri)), true, nil
		}
		attrs := append([]string{"METHOD=SAMPLE-AES", quoted("URI", uri)}, s.ivAttr(d.key.id)...)
		attrs = append(attrs, quoted("KEYFORMAT", "com.apple.streamingkeydelivery"), quoted("KEYFORMATVERSIONS", "1"))
		return hlsTag(playlistOf(el), attrs...), true, nil
	}
	return "", false, nil
}

func fillHLSAES128(s *signer, d *drmSystem, el *cpix.Element) (string, bool, error) {
	switch el.Local {
	case elHLSSignaling, elURIExtXKey:
		// The key URI is this server's /keys/{kid}; no KEYFORMAT (the
		// default, identity, RFC 8216 §4.3.2.4); the IV when the key has
		// one, else the media sequence number is the IV.
		uri, err := s.url("HLS AES-128", "envelope", d.key.id)
		if err != nil {
			return "", false, err
		}
		if el.Local == elURIExtXKey {
			return b64([]byte(uri)), true, nil
		}
		attrs := append([]string{"METHOD=AES-128", quoted("URI", uri)}, s.ivAttr(d.key.id)...)
		return hlsTag(playlistOf(el), attrs...), true, nil
	}
	return "", false, nil
}

// fillClearKey signals ClearKey in DASH: the W3C common pssh box (version 1,
// the KID, no data), and this server's ClearKey license URL as DASH-IF's
// Laurl (DASH-IF IOP, "Clear Key": dashif:Laurl, namespace
// https://dashif.org/CPS; and the older clearkey:Laurl with
// Lic_type="EME-1.0", namespace http://dashif.org/guidelines/clearKey,
// which some players still read).
func fillClearKey(s *signer, d *drmSystem, el *cpix.Element) (string, bool, error) {
	box, err := (&pssh.Box{Version: 1, SystemID: pssh.Common, KIDs: [][16]byte{d.key.id}}).Marshal()
	if err != nil {
		return "", false, err
	}
	switch el.Local {
	case elPSSH:
		return b64(box), true, nil
	case elContentProtection:
		la, err := s.url("ClearKey", "clearkey", d.key.id)
		if err != nil {
			return "", false, err
		}
		la = xmlText.Replace(la)
		x := `<dashif:Laurl xmlns:dashif="https://dashif.org/CPS">` + la + `</dashif:Laurl>` +
			`<clearkey:Laurl xmlns:clearkey="http://dashif.org/guidelines/clearKey" Lic_type="EME-1.0">` + la + `</clearkey:Laurl>`
		if d.system.id == systemCommon {
			x = cencPSSH(box) + x
		}
		return b64([]byte(x)), true, nil
	}
	return "", false, nil
}
