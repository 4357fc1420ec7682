// Package amsapi is the Azure Media Services (AMS) v2 compatibility API of
// the admin listener, for teams moving off AMS with their own tooling: the
// ContentKey entity set and the functions around it, in the shapes of the
// AMS REST API. It is one of the APIs mounted on the admin plane (package
// admin/plane), beside the native API (package admin).
//
// Routes (also reachable under /API/, the AMS documentation's spelling):
//
//	POST   /api/ContentKeys                               create from EncryptedContentKey (writer)
//	GET    /api/ContentKeys                               list: $filter, $orderby, $select, $inlinecount, $top, $skip (reader)
//	GET    /api/ContentKeys/$count                        how many $filter matches, as text (reader)
//	GET    /api/ContentKeys('ID')                         one key, $select (reader)
//	DELETE /api/ContentKeys('ID')                         soft delete (writer)
//	POST   /api/ContentKeys('ID')/GetKeyDeliveryUrl       the URL a player uses (reader)
//	GET    /api/Assets('ASSETID')/ContentKeys[/$count]    an asset's keys, with the same options (reader)
//	POST   /api/Assets('ASSETID')/$links/ContentKeys      link a key to the asset, {"uri":".../ContentKeys('ID')"} (writer)
//	DELETE /api/Assets('ASSETID')/$links/ContentKeys('ID') unlink it (writer)
//	GET    /api/GetProtectionKeyId?contentKeyType=N       the protection certificate's thumbprint (reader)
//	GET    /api/GetProtectionKey?ProtectionKeyId='T'      the protection certificate (reader)
//
// The OData key segments (ContentKeys('...'), Assets('...')) are parsed
// once, before routing, by a pre-router (preRoute) that turns them into
// ordinary route parameters; they are accepted raw or percent-encoded.
//
// Answers are plain JSON (OData JSON light without metadata) or the OData
// verbose format (dates as \/Date(ms)\/) when the request asks for it;
// errors are the plane's problem documents, or OData errors
// ({"odata.error":...}, verbose {"error":...}) when the request asks for
// OData JSON (odataError).
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
