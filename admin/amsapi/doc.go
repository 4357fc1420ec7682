// Package amsapi is the Azure Media Services (AMS) v2 compatibility API of
// the admin listener, for teams moving off AMS with their own tooling: the
// ContentKey entity set and the functions around it, in the shapes of the
// AMS REST API. It is one of the APIs mounted on the admin plane (package
// admin/plane), beside the native API (package admin).
//
// Routes (also reachable under /API/, the AMS documentation's spelling):
//
//	POST   /api/ContentKeys                               create from EncryptedContentKey (writer)
//	GET    /api/ContentKeys                               list, $top/$skip (reader)
//	GET    /api/ContentKeys('ID')                         one key (reader)
//	DELETE /api/ContentKeys('ID')                         soft delete (writer)
//	POST   /api/ContentKeys('ID')/GetKeyDeliveryUrl       the URL a player uses (reader)
//	GET    /api/Assets('ASSETID')/ContentKeys             an asset's keys (reader)
//	GET    /api/GetProtectionKeyId?contentKeyType=N       the protection certificate's thumbprint (reader)
//	GET    /api/GetProtectionKey?ProtectionKeyId='T'      the protection certificate (reader)
//
// The OData key segments (ContentKeys('...'), Assets('...')) are parsed
// once, before routing, by a pre-router (preRoute) that turns them into
// ordinary route parameters; they are accepted raw or percent-encoded.
//
// Security invariants: no answer carries key material, not even encrypted
// (EncryptedContentKey is always null); the checksum is answered, as AMS
// did (it is also public in every PlayReady header). The content key only
// travels inwards, encrypted to the server's RSA protection certificate;
// decrypted, it lives only in local variables that are cleared (best
// effort) before the handler returns.
//
// amsapi imports the plane, keystore, ams and playready, and never a
// concrete store nor a sibling API.
package amsapi
