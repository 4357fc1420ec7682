package cpix

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// BenchmarkRead100k reads a CPIX document of 100,000 content keys (about
// 25 MB, half of them with an explicitIV), as Write produces it.
func BenchmarkRead100k(b *testing.B) {
	const n = 100_000
	var buf bytes.Buffer
	if err := Write(&buf, &Document{ContentID: "bench", Keys: randomKeys(rand.New(rand.NewPCG(5, 6)), n)}); err != nil {
		b.Fatal(err)
	}
	doc := buf.Bytes()
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Read(bytes.NewReader(doc), int64(len(doc)))
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Keys) != n {
			b.Fatalf("%d keys", len(d.Keys))
		}
	}
}

func BenchmarkWrite100k(b *testing.B) {
	d := &Document{ContentID: "bench", Keys: randomKeys(rand.New(rand.NewPCG(5, 6)), 100_000)}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := Write(&buf, d); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
