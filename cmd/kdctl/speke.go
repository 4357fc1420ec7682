package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/keystore"
)

// spekeSystem is a DRM system kdctl speke request can ask for, by the name
// given to --system, with the signaling it asks for.
type spekeSystem struct {
	name, id string
	els      []string // DRMSystem children; "HLS" stands for the media and master playlists
}

var spekeSystems = []spekeSystem{
	{"widevine", "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed", []string{"PSSH", "ContentProtectionData", "HLS"}},
	{"playready", "9a04f079-9840-4286-ab92-e65be0885f95", []string{"PSSH", "ContentProtectionData", "HLS", "SmoothStreamingProtectionHeaderData"}},
	{"fairplay", "94ce86fb-07ff-4f43-adb8-93d2fa968ca2", []string{"HLS"}},
	{"aes128", "3ea8778f-7742-4bf9-b18b-e834b2acbd47", []string{"HLS"}},
	{"clearkey", "e2719d58-a985-b3c9-781a-b030af78d30e", []string{"ContentProtectionData"}},
	{"common", "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b", []string{"PSSH", "ContentProtectionData"}},
}

func spekeSystemNames() string {
	var n []string
	for _, s := range spekeSystems {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}

// spekeRequest: kdctl speke request --content ID [--kid KID]...
// --system S,... [--track-type T,...] [--scheme cenc|cbcs] [--period N]
// [--out FILE]
func spekeRequest(fs *flag.FlagSet) runner {
	content := fs.String("content", "", "the content `ID` (CPIX@contentId; required)")
	var kids kidList
	fs.Var(&kids, "kid", "a `KID` to ask for (repeatable; default: one new random KID)")
	systemList := fs.String("system", "", "DRM `systems`, comma-separated: "+spekeSystemNames()+" (required)")
	trackTypes := fs.String("track-type", "", "the intendedTrackType of each KID, comma-separated, in order (default: ALL for one key; VIDEO,AUDIO for two)")
	scheme := fs.String("scheme", "", "commonEncryptionScheme: cenc, cbcs, cens or cbc1 (default cbcs with fairplay or aes128, else cenc)")
	period := fs.Int64("period", -1, "put the keys in a key period with this `index` (key rotation); default: no ContentKeyPeriodList")
	out := fs.String("out", "", "also write the server's CPIX answer to a new 0600 `file`")
	return func(e *env, _ []string) error {
		if *content == "" {
			return usageError("speke request: --content is required")
		}
		var systems []int
		for _, name := range strings.Split(*systemList, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			i := slices.IndexFunc(spekeSystems, func(s spekeSystem) bool { return s.name == name })
			if i < 0 {
				return usageError("speke request: unknown --system %q (want %s)", name, spekeSystemNames())
			}
			systems = append(systems, i)
		}
		if len(systems) == 0 {
			return usageError("speke request: --system is required (%s)", spekeSystemNames())
		}
		if len(kids) == 0 {
			var id keystore.KeyID
			if _, err := io.ReadFull(rand.Reader, id[:]); err != nil {
				return err
			}
			id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80 // a version 4 UUID
			kids = append(kids, id.String())
		}
		var types []string
		switch {
		case *trackTypes != "":
			for _, t := range strings.Split(*trackTypes, ",") {
				types = append(types, strings.TrimSpace(t))
			}
		case len(kids) == 1:
			types = []string{"ALL"}
		case len(kids) == 2:
			types = []string{"VIDEO", "AUDIO"}
		default:
			return usageError("speke request: with %d KIDs, give each its --track-type (e.g. SD,HD,UHD,STEREO_AUDIO,MULTICHANNEL_AUDIO)", len(kids))
		}
		if len(types) != len(kids) {
			return usageError("speke request: %d --track-type values for %d KIDs", len(types), len(kids))
		}
		if *scheme == "" {
			*scheme = "cenc"
			for _, i := range systems {
				if n := spekeSystems[i].name; n == "fairplay" || n == "aes128" {
					*scheme = "cbcs"
				}
			}
		}
		if *out != "" {
			if err := refuseExisting(*out); err != nil {
				return refused(err)
			}
		}
		doc := buildSPEKERequest(*content, kids, types, systems, *scheme, *period)
		c, err := e.client()
		if err != nil {
			return err
		}
		a, err := c.send(e.ctx, request{method: http.MethodPost, path: []string{"speke", "v2"}, body: doc, ctype: "application/xml",
			accept: "application/xml", header: map[string]string{"X-Speke-Version": "2.0"}})
		if err != nil {
			return err
		}
		defer clear(a.body)
		root, err := cpix.ParseTree(bytes.NewReader(a.body), maxResponse)
		if err != nil || !root.Is(cpix.NamespaceCPIX, "CPIX") {
			return notAPI("a SPEKE answer", a.body)
		}
		if *out != "" {
			if err := createExclusive(*out, a.body); err != nil {
				return refused(err)
			}
		}
		return printSPEKE(e.stdout, root)
	}
}

// buildSPEKERequest writes a SPEKE v2 request: CPIX 2.3 with the content
// ID, a ContentKey per KID, a DRMSystem per KID and system asking for the
// system's signaling, and a ContentKeyUsageRule per KID (with a
// KeyPeriodFilter when period is not negative).
func buildSPEKERequest(content string, kids, types []string, systems []int, scheme string, period int64) []byte {
	const ns = cpix.NamespaceCPIX
	root := &cpix.Element{Space: ns, Prefix: "cpix", Local: "CPIX", Attr: []cpix.Attr{
		{Space: cpix.NamespaceXMLNS, Prefix: "xmlns", Local: "cpix", Value: ns},
		{Space: cpix.NamespaceXMLNS, Prefix: "xmlns", Local: "pskc", Value: cpix.NamespacePSKC},
	}}
	root.SetAttr("contentId", content)
	root.SetAttr("version", "2.3")
	keyList := cpix.NewElement(ns, "ContentKeyList")
	sysList := cpix.NewElement(ns, "DRMSystemList")
	ruleList := cpix.NewElement(ns, "ContentKeyUsageRuleList")
	const periodID = "keyPeriod_kdctl"
	for i, kid := range kids {
		ck := cpix.NewElement(ns, "ContentKey")
		ck.SetAttr("kid", kid)
		ck.SetAttr("commonEncryptionScheme", scheme)
		keyList.Append(ck)
		for _, si := range systems {
			s := spekeSystems[si]
			d := cpix.NewElement(ns, "DRMSystem")
			d.SetAttr("kid", kid)
			d.SetAttr("systemId", s.id)
			for _, el := range s.els {
				if el == "HLS" {
					for _, pl := range []string{"media", "master"} {
						h := cpix.NewElement(ns, "HLSSignalingData")
						h.SetAttr("playlist", pl)
						d.Append(h)
					}
					continue
				}
				d.Append(cpix.NewElement(ns, el))
			}
			sysList.Append(d)
		}
		rule := cpix.NewElement(ns, "ContentKeyUsageRule")
		rule.SetAttr("kid", kid)
		rule.SetAttr("intendedTrackType", types[i])
		if period >= 0 {
			f := cpix.NewElement(ns, "KeyPeriodFilter")
			f.SetAttr("periodId", periodID)
			rule.Append(f)
		}
		ruleList.Append(rule)
	}
	root.Append(keyList)
	root.Append(sysList)
	if period >= 0 {
		pl := cpix.NewElement(ns, "ContentKeyPeriodList")
		p := cpix.NewElement(ns, "ContentKeyPeriod")
		p.SetAttr("id", periodID)
		p.SetAttr("index", fmt.Sprint(period))
		pl.Append(p)
		root.Append(pl)
	}
	root.Append(ruleList)
	var b bytes.Buffer
	root.WriteDocument(&b) // our own names and values: nothing XML cannot carry
	return b.Bytes()
}

// printSPEKE writes the keys and the signaling of a SPEKE answer for a
// person: per key its value (base64 and hex) and IV, then per DRM system
// each signaling element, the base64 ones decoded when they are text.
func printSPEKE(w io.Writer, root *cpix.Element) error {
	const ns = cpix.NamespaceCPIX
	var b strings.Builder
	cid, _ := root.AttrValue("contentId")
	fmt.Fprintf(&b, "content %s\n", cid)
	systemsOf := map[string][]*cpix.Element{}
	if l := root.Child(ns, "DRMSystemList"); l != nil {
		for _, d := range l.ChildElements(ns, "DRMSystem") {
			kid, _ := d.AttrValue("kid")
			systemsOf[strings.ToLower(kid)] = append(systemsOf[strings.ToLower(kid)], d)
		}
	}
	if l := root.Child(ns, "ContentKeyList"); l != nil {
		for _, ck := range l.ChildElements(ns, "ContentKey") {
			kid, _ := ck.AttrValue("kid")
			scheme, _ := ck.AttrValue("commonEncryptionScheme")
			fmt.Fprintf(&b, "\nkey %s (%s)\n", kid, scheme)
			if iv, ok := ck.AttrValue("explicitIV"); ok {
				raw, _ := base64.StdEncoding.DecodeString(iv)
				fmt.Fprintf(&b, "  iv     %s (0x%x)\n", iv, raw)
			}
			var secret *cpix.Element
			if d := ck.Child(ns, "Data"); d != nil {
				secret = d.Child(cpix.NamespacePSKC, "Secret")
			}
			switch {
			case secret != nil && secret.Child(cpix.NamespacePSKC, "PlainValue") != nil:
				v := strings.TrimSpace(secret.Child(cpix.NamespacePSKC, "PlainValue").Text())
				raw, _ := base64.StdEncoding.DecodeString(v)
				fmt.Fprintf(&b, "  value  %s (hex %s)\n", v, hex.EncodeToString(raw))
				clear(raw)
			case secret != nil:
				b.WriteString("  value  (encrypted)\n")
			default:
				b.WriteString("  value  (none)\n")
			}
			for _, d := range systemsOf[strings.ToLower(kid)] {
				sys, _ := d.AttrValue("systemId")
				name := sys
				if i := slices.IndexFunc(spekeSystems, func(s spekeSystem) bool { return s.id == strings.ToLower(sys) }); i >= 0 {
					name = spekeSystems[i].name
				}
				fmt.Fprintf(&b, "  %s\n", name)
				for _, el := range d.Elements() {
					label := el.Local
					if pl, ok := el.AttrValue("playlist"); ok {
						label += " (" + pl + ")"
					}
					text := strings.TrimSpace(el.Text())
					if dec, err := base64.StdEncoding.DecodeString(text); err == nil && isText(dec) && el.Local != "PSSH" && el.Local != "SmoothStreamingProtectionHeaderData" {
						text = string(dec)
					}
					fmt.Fprintf(&b, "    %-38s %s\n", label, text)
				}
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// isText reports whether b is printable UTF-8 text (a tag, a URI, XML).
func isText(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range string(b) {
		if c == 0xfffd || c < ' ' && c != '\n' && c != '\t' {
			return false
		}
	}
	return true
}
