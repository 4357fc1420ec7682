package playready

// GUID returns the 16 bytes of a UUID (given in RFC 9562 big-endian order)
// in the little-endian GUID layout PlayReady uses, which is also .NET's
// Guid.ToByteArray() order: the first three fields (4, 2 and 2 bytes) are
// byte-reversed, the last 8 bytes are unchanged. The conversion is its own
// inverse, so GUID also turns a PlayReady KID back into RFC 9562 order.
//
// For example Guid("00112233-4455-6677-8899-aabbccddeeff").ToByteArray() is
// 33 22 11 00 55 44 77 66 88 99 aa bb cc dd ee ff.
func GUID(uuid [16]byte) [16]byte {
	g := uuid
	g[0], g[1], g[2], g[3] = uuid[3], uuid[2], uuid[1], uuid[0]
	g[4], g[5] = uuid[5], uuid[4]
	g[6], g[7] = uuid[7], uuid[6]
	return g
}
