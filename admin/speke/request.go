package speke

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/keystore"
)

// The element names of a SPEKE v2 document, all in the CPIX namespace
// (DASH-IF CPIX 2.3, "5. Data model").
const (
	elContentKeyList     = "ContentKeyList"
	elContentKey         = "ContentKey"
	elData               = "Data"
	elDRMSystemList      = "DRMSystemList"
	elDRMSystem          = "DRMSystem"
	elPeriodList         = "ContentKeyPeriodList"
	elPeriod             = "ContentKeyPeriod"
	elUsageRuleList      = "ContentKeyUsageRuleList"
	elUsageRule          = "ContentKeyUsageRule"
	elKeyPeriodFilter    = "KeyPeriodFilter"
	elDeliveryDataList   = "DeliveryDataList"
	elDeliveryData       = "DeliveryData"
	elPSSH               = "PSSH"
	elContentProtection  = "ContentProtectionData"
	elHLSSignaling       = "HLSSignalingData"
	elSmoothStreaming    = "SmoothStreamingProtectionHeaderData"
	elURIExtXKey         = "URIExtXKey"
	nsCPIX               = cpix.NamespaceCPIX
	maxContentIDQuoted   = 64
	maxAttributeQuoted   = 64
	cpixVersionSPEKE20   = "2.3"
	cpixVersionSPEKE21   = "2.4"
	spekeVersion20       = "2.0"
	spekeVersion21       = "2.1"
	trackTypeShared      = "ALL"
	playlistMedia        = "media"
	playlistMaster       = "master"
	defaultPeriodGroupID = "" // the rules without a KeyPeriodFilter
)

// request is a checked SPEKE v2 request: the document, and views of its
// parts that point into it, so that filling them in fills the document.
type request struct {
	root      *cpix.Element
	version   string // X-Speke-Version
	contentID string
	keys      []*contentKey
	byKID     map[keystore.KeyID]*contentKey
	systems   []*drmSystem
	delivery  []*cpix.Element // DeliveryData elements
}

// contentKey is one ContentKey of the request.
type contentKey struct {
	el     *cpix.Element
	id     keystore.KeyID
	scheme string
	// iv is the explicitIV the request gave; ivAsked: the attribute is
	// there but empty, so the key provider supplies one.
	iv        []byte
	ivAsked   bool
	rule      *usageRule
	systems   []*drmSystem
	trackType string
	period    *keyPeriod
}

// drmSystem is one DRMSystem of the request.
type drmSystem struct {
	el     *cpix.Element
	key    *contentKey
	system *system
}

type keyPeriod struct {
	id    string
	index uint64
	start time.Time
	end   time.Time
}

type usageRule struct {
	kid       keystore.KeyID
	trackType string
	period    *keyPeriod
}

// refuse is a refusal of the document: 422 with the message in plain text,
// as the SPEKE documentation gives its errors.
func refuse(reason, format string, args ...any) error {
	return &plane.TextError{Status: http.StatusUnprocessableEntity, Reason: reason, Text: fmt.Sprintf(format, args...)}
}

// quote cuts client text for a message.
func quote(s string, n int) string { return strconv.Quote(plane.Truncate(s, n)) }

// parseRequest checks a SPEKE v2 request document against the SPEKE v2.0
// contract (AWS, "SPEKE API v2 - Customizations and constraints to the
// DASH-IF specification", "Encryption contract" and "Standard payload
// components", and the checks of AWS's own SPEKE v2 verification suite,
// awslabs/speke-reference-server spekev2_verification_testsuite): CPIX
// 2.3 (2.4 for SPEKE 2.1) with contentId and version; ContentKeyList,
// DRMSystemList and ContentKeyUsageRuleList present and not empty; each
// ContentKey with a KID and a commonEncryptionScheme, all one scheme;
// each DRMSystem naming a ContentKey and a known system; each ContentKey
// with exactly one usage rule and an intendedTrackType; key periods
// referred to by KeyPeriodFilter; and, per key period, the track types of
// a SPEKE v2 preset. The messages are those the documentation gives where
// it gives one ("Missing CPIX@contentId", ...), else in the same style.
func parseRequest(root *cpix.Element, spekeVersion string, maxKeys int) (*request, error) {
	if !root.Is(nsCPIX, "CPIX") {
		return nil, refuse("not_cpix", "Invalid CPIX document: the root element must be CPIX in the namespace %s", nsCPIX)
	}
	r := &request{root: root, version: spekeVersion, byKID: map[keystore.KeyID]*contentKey{}}
	var ok bool
	if r.contentID, ok = root.AttrValue("contentId"); !ok || r.contentID == "" {
		return nil, refuse("missing_content_id", "Missing CPIX@contentId")
	}
	version, ok := root.AttrValue("version")
	if !ok || version == "" {
		return nil, refuse("missing_cpix_version", "Missing CPIX@version")
	}
	// SPEKE v2.0 is CPIX 2.3, SPEKE v2.1 is CPIX 2.4 ("SPEKE API v2.1":
	// "the encryptor sends X-Speke-Version value 2.1 and CPIX@version value
	// 2.4").
	if want := map[string]string{spekeVersion20: cpixVersionSPEKE20, spekeVersion21: cpixVersionSPEKE21}[spekeVersion]; version != want {
		return nil, refuse("unsupported_cpix_version", "Unsupported CPIX@version")
	}
	if err := keystore.ValidateAsset(r.contentID); err != nil {
		return nil, refuse("invalid_content_id", "Invalid CPIX@contentId %s: a content ID is 1 to %d printable characters without spaces", quote(r.contentID, maxContentIDQuoted), keystore.MaxAssetID)
	}
	// SPEKE does not use XMLDSIG ("SPEKE doesn't support digital signature
	// verification (XMLDSIG) for request or response payloads"): a signed
	// request is refused rather than answered as if it were not signed.
	if root.Child(cpix.NamespaceDSig, "Signature") != nil {
		return nil, refuse("signed_document", "Signed CPIX documents are not supported: SPEKE does not use XML signatures (ds:Signature)")
	}
	if err := r.parseKeys(maxKeys); err != nil {
		return nil, err
	}
	if err := r.parseSystems(); err != nil {
		return nil, err
	}
	periods, err := parsePeriods(root)
	if err != nil {
		return nil, err
	}
	if err := r.parseRules(periods); err != nil {
		return nil, err
	}
	if l := root.Child(nsCPIX, elDeliveryDataList); l != nil {
		r.delivery = l.ChildElements(nsCPIX, elDeliveryData)
	}
	return r, nil
}

// singleList returns the one list element local of the root.
func singleList(root *cpix.Element, local string) (*cpix.Element, error) {
	lists := root.ChildElements(nsCPIX, local)
	switch len(lists) {
	case 0:
		return nil, refuse("missing_"+strings.ToLower(local), "Missing %s", local)
	case 1:
		return lists[0], nil
	}
	return nil, refuse("invalid_structure", "Invalid CPIX document: more than one %s", local)
}

// schemes are the commonEncryptionScheme values of CPIX 2.3 (ISO/IEC
// 23001-7 protection schemes); CPIX 2.4 (SPEKE v2.1) adds the HLS methods.
var (
	schemes20 = []string{"cenc", "cbc1", "cens", "cbcs"}
	schemes21 = []string{"cenc", "cbc1", "cens", "cbcs", "AES-128", "SAMPLE-AES", "SAMPLE-AES-CTR"}
)

func (r *request) parseKeys(maxKeys int) error {
	list, err := singleList(r.root, elContentKeyList)
	if err != nil {
		return err
	}
	els := list.ChildElements(nsCPIX, elContentKey)
	if len(els) == 0 {
		return refuse("no_content_key", "ContentKeyList holds no ContentKey")
	}
	if len(els) > maxKeys {
		return refuse("too_many_keys", "Too many ContentKey elements: at most %d per request", maxKeys)
	}
	allowed := schemes20
	if r.version == spekeVersion21 {
		allowed = schemes21
	}
	for _, el := range els {
		raw, ok := el.AttrValue("kid")
		if !ok || raw == "" {
			return refuse("missing_kid", "Missing ContentKey@kid")
		}
		id, err := parseKID(raw)
		if err != nil {
			return refuse("invalid_kid", "Invalid ContentKey@kid %s: want a UUID such as 0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", quote(raw, maxAttributeQuoted))
		}
		if r.byKID[id] != nil {
			return refuse("duplicate_kid", "Duplicate ContentKey@kid %s", id)
		}
		k := &contentKey{el: el, id: id}
		if k.scheme, ok = el.AttrValue("commonEncryptionScheme"); !ok || k.scheme == "" {
			// The message of the documentation ("Implementing SPEKE v2.0
			// with AWS Elemental MediaPackage", error responses).
			return refuse("missing_scheme", "Missing ContentKey@commonEncryptionScheme for KID %s", id)
		}
		if !slices.Contains(allowed, k.scheme) {
			return refuse("unsupported_scheme", "Unsupported ContentKey@commonEncryptionScheme %s for KID %s (want one of %s)", quote(k.scheme, 16), id, strings.Join(allowed, ", "))
		}
		if v, present := el.AttrValue("explicitIV"); present {
			if v = strings.Trim(v, " \t\r\n"); v == "" {
				k.ivAsked = true
			} else if iv, err := base64.StdEncoding.Strict().DecodeString(v); err != nil || len(iv) != 16 {
				return refuse("invalid_iv", "Invalid ContentKey@explicitIV for KID %s: want the base64 of 16 bytes", id)
			} else {
				k.iv = iv
			}
		}
		// The encryptor asks, the key provider supplies: a request that
		// already holds a key value is not a SPEKE request. An empty Data
		// (no pskc:Secret value) is replaced.
		for _, d := range el.ChildElements(nsCPIX, elData) {
			if d.HasElements() {
				return refuse("key_given", "ContentKey %s already holds a key value: in SPEKE the key provider supplies the keys", id)
			}
		}
		r.keys = append(r.keys, k)
		r.byKID[id] = k
	}
	// One scheme per document ("Non compliant ContentKey@commonEncryptionScheme
	// combination", MediaPackage's error responses): a streamset is
	// encrypted with one protection scheme.
	for _, k := range r.keys[1:] {
		if k.scheme != r.keys[0].scheme {
			return refuse("mixed_schemes", "Non compliant ContentKey@commonEncryptionScheme combination")
		}
	}
	return nil
}

// parseKID accepts the canonical UUID form CPIX uses, in either case.
func parseKID(s string) (keystore.KeyID, error) {
	if len(s) != 36 {
		return keystore.KeyID{}, keystore.ErrInvalidKeyID
	}
	return keystore.ParseKeyID(s)
}

func (r *request) parseSystems() error {
	list, err := singleList(r.root, elDRMSystemList)
	if err != nil {
		return err
	}
	els := list.ChildElements(nsCPIX, elDRMSystem)
	if len(els) == 0 {
		return refuse("no_drm_system", "DRMSystemList holds no DRMSystem")
	}
	type pair struct {
		kid keystore.KeyID
		sys string
	}
	seen := map[pair]bool{}
	for _, el := range els {
		raw, ok := el.AttrValue("kid")
		if !ok || raw == "" {
			return refuse("missing_kid", "Missing DRMSystem@kid")
		}
		id, err := parseKID(raw)
		if err != nil {
			return refuse("invalid_kid", "Invalid DRMSystem@kid %s", quote(raw, maxAttributeQuoted))
		}
		k := r.byKID[id]
		if k == nil {
			return refuse("unknown_kid", "DRMSystem@kid %s names no ContentKey", id)
		}
		sysID, ok := el.AttrValue("systemId")
		if !ok || sysID == "" {
			return refuse("missing_system_id", "Missing DRMSystem@systemId for KID %s", id)
		}
		sys := lookupSystem(sysID)
		if sys == nil {
			return refuse("unsupported_system", "Unsupported DRMSystem@systemId %s for KID %s (supported: %s)", quote(sysID, maxAttributeQuoted), id, supportedSystems())
		}
		if seen[pair{id, sys.id}] {
			return refuse("duplicate_drm_system", "Duplicate DRMSystem for KID %s and systemId %s", id, sys.id)
		}
		seen[pair{id, sys.id}] = true
		// FairPlay is cbcs ("Requests for Fairplay DRM system ID should not
		// include cenc as common encryption", the verification suite's
		// negative cases).
		if !slices.Contains(sys.schemes, k.scheme) {
			return refuse("mixed_schemes", "Non compliant ContentKey@commonEncryptionScheme combination")
		}
		d := &drmSystem{el: el, key: k, system: sys}
		k.systems = append(k.systems, d)
		r.systems = append(r.systems, d)
	}
	return nil
}

// parsePeriods reads ContentKeyPeriodList (optional), by ContentKeyPeriod
// id. SPEKE tracks key periods by index only ("SPEKE uses only the
// ContentKeyPeriod@index to track the key period"); start and end are kept
// when present (SPEKE v2.1, CPIX 2.4).
func parsePeriods(root *cpix.Element) (map[string]*keyPeriod, error) {
	lists := root.ChildElements(nsCPIX, elPeriodList)
	if len(lists) > 1 {
		return nil, refuse("invalid_structure", "Invalid CPIX document: more than one %s", elPeriodList)
	}
	periods := map[string]*keyPeriod{}
	if len(lists) == 0 {
		return periods, nil
	}
	indexes := map[uint64]bool{}
	for _, el := range lists[0].ChildElements(nsCPIX, elPeriod) {
		p := &keyPeriod{}
		var ok bool
		if p.id, ok = el.AttrValue("id"); !ok || p.id == "" {
			return nil, refuse("missing_period_id", "Missing ContentKeyPeriod@id")
		}
		raw, ok := el.AttrValue("index")
		if !ok || raw == "" {
			return nil, refuse("missing_period_index", "Missing ContentKeyPeriod@index for ContentKeyPeriod %s", quote(p.id, maxAttributeQuoted))
		}
		var err error
		if p.index, err = strconv.ParseUint(raw, 10, 64); err != nil {
			return nil, refuse("invalid_period_index", "Invalid ContentKeyPeriod@index %s: want a non-negative integer", quote(raw, 24))
		}
		for _, a := range []struct {
			name string
			t    *time.Time
		}{{"start", &p.start}, {"end", &p.end}} {
			if v, present := el.AttrValue(a.name); present {
				t, err := parseDateTime(v)
				if err != nil {
					return nil, refuse("invalid_period_time", "Invalid ContentKeyPeriod@%s %s: want an xs:dateTime such as 2026-05-01T10:00:00Z", a.name, quote(v, 40))
				}
				*a.t = t
			}
		}
		if !p.start.IsZero() && !p.end.IsZero() && !p.end.After(p.start) {
			return nil, refuse("invalid_period_time", "Invalid ContentKeyPeriod %s: end must come after start", quote(p.id, maxAttributeQuoted))
		}
		if periods[p.id] != nil {
			return nil, refuse("duplicate_period", "Duplicate ContentKeyPeriod@id %s", quote(p.id, maxAttributeQuoted))
		}
		if indexes[p.index] {
			return nil, refuse("duplicate_period", "Duplicate ContentKeyPeriod@index %d", p.index)
		}
		periods[p.id], indexes[p.index] = p, true
	}
	return periods, nil
}

// parseDateTime reads an xs:dateTime; without a time zone it is UTC (as
// the SPEKE v2.1 verification suite reads it).
func parseDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an xs:dateTime")
}

// Track types: the ContentKeyUsageRule@intendedTrackType values of the
// SPEKE v2 presets (MediaPackage and MediaConvert, "SPEKE v2.0 presets":
// the key names of each preset; "ALL" is the SHARED preset's single key).
var (
	videoTrackTypes = []string{"VIDEO", "SD", "HD", "UHD", "SD+HD1", "HD1", "HD2", "UHD1", "UHD2"}
	audioTrackTypes = []string{"AUDIO", "STEREO_AUDIO", "MULTICHANNEL_AUDIO", "MULTICHANNEL_AUDIO_3_6", "MULTICHANNEL_AUDIO_7"}
	// videoPresets and audioPresets are the key sets of PRESET-VIDEO-1 to
	// -8 and PRESET-AUDIO-1 to -3.
	videoPresets = [][]string{
		{"VIDEO"},
		{"SD", "HD"},
		{"SD", "HD", "UHD"},
		{"SD", "HD", "UHD1", "UHD2"},
		{"SD", "HD1", "HD2", "UHD1", "UHD2"},
		{"SD", "HD1", "HD2", "UHD"},
		{"SD+HD1", "HD2", "UHD"},
		{"SD+HD1", "HD2", "UHD1", "UHD2"},
	}
	audioPresets = [][]string{
		{"AUDIO"},
		{"STEREO_AUDIO", "MULTICHANNEL_AUDIO"},
		{"STEREO_AUDIO", "MULTICHANNEL_AUDIO_3_6", "MULTICHANNEL_AUDIO_7"},
	}
)

func (r *request) parseRules(periods map[string]*keyPeriod) error {
	list, err := singleList(r.root, elUsageRuleList)
	if err != nil {
		return err
	}
	els := list.ChildElements(nsCPIX, elUsageRule)
	if len(els) == 0 {
		return refuse("no_usage_rule", "ContentKeyUsageRuleList holds no ContentKeyUsageRule")
	}
	// groups holds the track types of each key period ("" for rules with
	// no KeyPeriodFilter), in the order first seen.
	groups := map[string][]string{}
	var order []string
	for _, el := range els {
		raw, ok := el.AttrValue("kid")
		if !ok || raw == "" {
			return refuse("missing_kid", "Missing ContentKeyUsageRule@kid")
		}
		id, err := parseKID(raw)
		if err != nil {
			return refuse("invalid_kid", "Invalid ContentKeyUsageRule@kid %s", quote(raw, maxAttributeQuoted))
		}
		k := r.byKID[id]
		if k == nil {
			return refuse("unknown_kid", "ContentKeyUsageRule@kid %s names no ContentKey", id)
		}
		if k.rule != nil {
			return refuse("several_rules", "ContentKey %s has more than one ContentKeyUsageRule: the encryption contract gives each key exactly one", id)
		}
		u := &usageRule{kid: id}
		if u.trackType, ok = el.AttrValue("intendedTrackType"); !ok || u.trackType == "" {
			return refuse("missing_track_type", "Missing ContentKeyUsageRule@intendedTrackType for KID %s", id)
		}
		if u.trackType != trackTypeShared && !slices.Contains(videoTrackTypes, u.trackType) && !slices.Contains(audioTrackTypes, u.trackType) {
			return refuse("unsupported_track_type", "Unsupported ContentKeyUsageRule@intendedTrackType %s for KID %s (want a key name of a SPEKE v2 preset: %s, %s or ALL)",
				quote(u.trackType, 32), id, strings.Join(videoTrackTypes, ", "), strings.Join(audioTrackTypes, ", "))
		}
		filters := el.ChildElements(nsCPIX, elKeyPeriodFilter)
		if len(filters) > 1 {
			return refuse("several_periods", "ContentKeyUsageRule for KID %s has more than one KeyPeriodFilter: each key belongs to one key period", id)
		}
		group := defaultPeriodGroupID
		if len(filters) == 1 {
			pid, _ := filters[0].AttrValue("periodId")
			if u.period = periods[pid]; u.period == nil {
				return refuse("unknown_period", "KeyPeriodFilter@periodId %s of KID %s names no ContentKeyPeriod", quote(pid, maxAttributeQuoted), id)
			}
			group = pid
		}
		if slices.Contains(groups[group], u.trackType) {
			// "The value of ContentKeyUsageRule@intendedTrackType shall be
			// unique in an encryption contract" (Encryption contract).
			return refuse("duplicate_track_type", "Non compliant encryption contract: intendedTrackType %s is used by more than one key%s", u.trackType, periodOf(u.period))
		}
		if _, seen := groups[group]; !seen {
			order = append(order, group)
		}
		groups[group] = append(groups[group], u.trackType)
		k.rule, k.trackType, k.period = u, u.trackType, u.period
	}
	for _, k := range r.keys {
		if k.rule == nil {
			return refuse("no_usage_rule", "No ContentKeyUsageRule for KID %s: the encryption contract gives each key one", k.id)
		}
	}
	for _, g := range order {
		var p *keyPeriod
		if g != defaultPeriodGroupID {
			p = periods[g]
		}
		if err := checkPresets(groups[g], p); err != nil {
			return err
		}
	}
	return nil
}

func periodOf(p *keyPeriod) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf(" in key period %d", p.index)
}

// checkPresets checks that the track types of one key period form the key
// sets of a video preset and an audio preset, or the SHARED preset alone
// (MediaPackage, "Encryption presets": "You can't select UNENCRYPTED for
// both audio and video presets"; "you can't combine UNENCRYPTED and SHARED
// presets"; SHARED for audio means SHARED for video). So a shared key
// beside separate ones is refused.
func checkPresets(types []string, p *keyPeriod) error {
	if slices.Contains(types, trackTypeShared) {
		if len(types) > 1 {
			return refuse("preset_shared", "Non compliant encryption contract: the SHARED key (intendedTrackType ALL) must be the only key%s, not beside %s", periodOf(p), strings.Join(slices.DeleteFunc(slices.Clone(types), func(s string) bool { return s == trackTypeShared }), ", "))
		}
		return nil
	}
	var video, audio []string
	for _, t := range types {
		if slices.Contains(videoTrackTypes, t) {
			video = append(video, t)
		} else {
			audio = append(audio, t)
		}
	}
	match := func(got []string, presets [][]string) bool {
		if len(got) == 0 {
			return true // UNENCRYPTED
		}
		for _, preset := range presets {
			if len(preset) == len(got) && !slices.ContainsFunc(got, func(s string) bool { return !slices.Contains(preset, s) }) {
				return true
			}
		}
		return false
	}
	if !match(video, videoPresets) {
		return refuse("preset_video", "Non compliant encryption contract: the video keys %s%s form no SPEKE v2 video preset", strings.Join(video, ", "), periodOf(p))
	}
	if !match(audio, audioPresets) {
		return refuse("preset_audio", "Non compliant encryption contract: the audio keys %s%s form no SPEKE v2 audio preset", strings.Join(audio, ", "), periodOf(p))
	}
	return nil
}
