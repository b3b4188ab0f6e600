// The address types every layer speaks (MinikAddressing, shared with the DNS server) come
// with the spec.
@_exported import MinikAddressing
