package cpix

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestReadNestingCapped (issue 12: "A CPIX document of 9 million nested
// elements (63 MB, under the default limit) took 1,540 MiB"): elements
// nested deeper than MaxDepth stop the reading with one problem, wherever
// they are.
func TestReadNestingCapped(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("<x>", n) + strings.Repeat("</x>", n) }
	for name, doc := range map[string]string{
		"in the root":       `<CPIX xmlns="urn:dashif:org:cpix">` + deep(MaxDepth) + `</CPIX>`,
		"in a ContentKey":   `<CPIX xmlns="urn:dashif:org:cpix"><ContentKeyList><ContentKey kid="` + kidA + `">` + deep(MaxDepth) + `</ContentKey></ContentKeyList></CPIX>`,
		"a million deep":    `<CPIX xmlns="urn:dashif:org:cpix">` + deep(1_000_000) + `</CPIX>`,
		"unclosed, endless": `<CPIX xmlns="urn:dashif:org:cpix">` + strings.Repeat("<x>", 100_000),
	} {
		t.Run(name, func(t *testing.T) {
			re := readErr(t, doc)
			if len(re.Problems) != 1 || re.Problems[0].Reason != ReasonNestingTooDeep || re.Count != 1 {
				t.Fatalf("problems: %+v", re.Problems)
			}
		})
	}
	// At the limit, a document still reads.
	ok := `<CPIX xmlns="urn:dashif:org:cpix">` + strings.Repeat("<x>", MaxDepth-1) + strings.Repeat("</x>", MaxDepth-1) + `</CPIX>`
	if _, err := readString(ok); err != nil {
		t.Fatalf("a document %d deep: %v", MaxDepth, err)
	}
}

// TestReadErrorListsAtMostMaxProblems: a document of many bad keys costs a
// hundred problems, and counts the rest.
func TestReadErrorListsAtMostMaxProblems(t *testing.T) {
	var keys strings.Builder
	for i := range 1000 {
		keys.WriteString(key(fmt.Sprintf("bad-%d", i), "", valA))
	}
	re := readErr(t, defaultDoc("", keys.String()))
	if len(re.Problems) != MaxProblems || re.Count != 1000 || re.Problems[0].KID != "bad-0" {
		t.Fatalf("%d problems listed, %d counted", len(re.Problems), re.Count)
	}
	if msg := re.Error(); !strings.Contains(msg, "1000 problems") || !strings.Contains(msg, "and 990 more") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestReadKeysLimit(t *testing.T) {
	doc := defaultDoc("", key(kidA, "", valA)+key(kidB, "", valB)+key("0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", "", valA))
	if d, err := ReadWith(strings.NewReader(doc), ReadOptions{Max: testMax, MaxKeys: 3}); err != nil || len(d.Keys) != 3 {
		t.Fatalf("three keys, limit 3: %v", err)
	}
	_, err := ReadWith(strings.NewReader(doc), ReadOptions{Max: testMax, MaxKeys: 2})
	re, ok := err.(*ReadError)
	if !ok || len(re.Problems) != 1 || re.Problems[0].Reason != ReasonTooManyKeys {
		t.Fatalf("three keys, limit 2: %v", err)
	}
}

// TestTreeNodesCapped: the parts of a document read whole (ParseTree for
// SPEKE requests, the DeliveryDataList of an import) hold at most
// MaxTreeNodes nodes: a 4 MB document of a million empty elements took
// 156 MiB as a tree.
func TestTreeNodesCapped(t *testing.T) {
	flood := strings.Repeat("<a/>", 1_000_000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, errTree := ParseTree(strings.NewReader(`<CPIX xmlns="urn:dashif:org:cpix">`+flood+`</CPIX>`), 8<<20)
	_, errRead := Read(strings.NewReader(`<CPIX xmlns="urn:dashif:org:cpix"><DeliveryDataList>`+flood+`</DeliveryDataList></CPIX>`), 8<<20)
	runtime.ReadMemStats(&after)
	for name, err := range map[string]error{"ParseTree": errTree, "Read": errRead} {
		re, ok := err.(*ReadError)
		if !ok || len(re.Problems) != 1 || re.Problems[0].Reason != ReasonTooManyNodes {
			t.Errorf("%s: %v", name, err)
		}
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 32<<20 {
		t.Errorf("the heap grew by %d MiB", grew>>20)
	}
	// Comments count too.
	if _, err := ParseTree(strings.NewReader(`<CPIX xmlns="urn:dashif:org:cpix">`+strings.Repeat("<!--x-->", MaxTreeNodes+1)+`</CPIX>`), 8<<20); err == nil {
		t.Error("a flood of comments was read")
	}
}
