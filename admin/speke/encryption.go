package speke

import (
	"io"

	"github.com/keydelivery/keydelivery/cpix"
)

// encryption is how the answer carries the content keys: in the clear
// (keys nil), or encrypted to the recipients the request's DeliveryData
// name ("SPEKE API v2 - Content key encryption": "Handle the element
// <cpix:DeliveryDataList> in the request and response payloads. Provide
// encrypted values in the <cpix:ContentKeyList> of the response payloads").
type encryption struct {
	keys *cpix.DocumentKey
	rand io.Reader
}

// newEncryption reads the recipients of the request: for each DeliveryData
// the certificate of its DeliveryKey (RSA, at least 2048 bits), to which it
// wraps one document key and one MAC key, added as the DeliveryData's
// DocumentKey and MACMethod. Without DeliveryData the keys go in the clear.
func newEncryption(req *request, rand io.Reader) (*encryption, error) {
	e := &encryption{rand: rand}
	if len(req.delivery) == 0 {
		return e, nil
	}
	var err error
	if e.keys, err = cpix.NewDocumentKey(rand); err != nil {
		return nil, err
	}
	for i, dd := range req.delivery {
		if dd.Child(nsCPIX, "DocumentKey") != nil || dd.Child(nsCPIX, "MACMethod") != nil {
			return nil, refuse("invalid_delivery_data", "DeliveryData %d already holds a DocumentKey or a MACMethod: the key provider makes them", i+1)
		}
		der, err := cpix.DeliveryCertificate(dd)
		if err != nil {
			return nil, refuse("invalid_delivery_data", "Invalid DeliveryData %d: want DeliveryKey/ds:X509Data/ds:X509Certificate holding the recipient's certificate", i+1)
		}
		_, pub, err := cpix.RecipientKey(der)
		if err != nil {
			return nil, refuse("invalid_delivery_data", "Invalid DeliveryData %d: the recipient certificate must hold an RSA key of at least %d bits (SPEKE requires 2048-bit RSA certificates)", i+1, cpix.MinRSABits)
		}
		wk, wm, err := e.keys.Wrap(rand, pub)
		if err != nil {
			return nil, err
		}
		docKey, mac := cpix.DeliveryElements(wk, wm)
		ref := dd.Child(nsCPIX, "DeliveryKey")
		dd.InsertAfter(ref, docKey)
		dd.InsertAfter(docKey, mac)
	}
	return e, nil
}

// secret is the pskc:Secret of one content key: encrypted when the request
// named recipients (no PlainValue is ever sent then), else PlainValue.
func (e *encryption) secret(value []byte) (*cpix.Element, error) {
	if e.keys == nil {
		return cpix.PlainSecret(value), nil
	}
	return e.keys.EncryptedSecret(e.rand, value)
}

// wipe clears the document key.
func (e *encryption) wipe() {
	if e.keys != nil {
		e.keys.Wipe()
	}
}
