package cpix_test

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/keydelivery/keydelivery/cpix"
)

func ExampleRead() {
	doc := `<?xml version="1.0" encoding="utf-8"?>
<CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc">
<ContentKeyList>
<ContentKey kid="d83cb192-1135-4c4e-9267-120b0d762856" explicitIV="AAAAAAAAAAAAAAAAAAAAAA==">
<Data><pskc:Secret><pskc:PlainValue>AAAAAAAAAAAAAAAAAAAAAA==</pskc:PlainValue></pskc:Secret></Data>
</ContentKey>
<ContentKey kid="{9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeeb}">
<Data><pskc:Secret><pskc:PlainValue>AAAAAAAAAAAAAAAAAAAAAA</pskc:PlainValue></pskc:Secret></Data>
</ContentKey>
</ContentKeyList>
</CPIX>`
	_, err := cpix.Read(strings.NewReader(doc), 16<<20)
	var re *cpix.ReadError
	if errors.As(err, &re) {
		for _, p := range re.Problems {
			fmt.Println(p.Index, p.KID, p.Reason)
		}
	}
	// Output:
	// 1 {9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeeb} invalid_kid
	// 1 {9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeeb} invalid_base64
}

func ExampleWrite() {
	d := &cpix.Document{ContentID: "asset-1", Keys: []cpix.Key{{
		KID:   [16]byte{0xd8, 0x3c, 0xb1, 0x92, 0x11, 0x35, 0x4c, 0x4e, 0x92, 0x67, 0x12, 0x0b, 0x0d, 0x76, 0x28, 0x56},
		Value: make([]byte, 16),
	}}}
	if err := cpix.Write(os.Stdout, d); err != nil {
		fmt.Println(err)
	}
	// Output:
	// <?xml version="1.0" encoding="UTF-8"?>
	// <CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:enc="http://www.w3.org/2001/04/xmlenc#" contentId="asset-1" version="2.3">
	//   <ContentKeyList>
	//     <ContentKey kid="d83cb192-1135-4c4e-9267-120b0d762856">
	//       <Data>
	//         <pskc:Secret>
	//           <pskc:PlainValue>AAAAAAAAAAAAAAAAAAAAAA==</pskc:PlainValue>
	//         </pskc:Secret>
	//       </Data>
	//     </ContentKey>
	//   </ContentKeyList>
	// </CPIX>
}
