// Request bodies in Kubernetes' protobuf encoding (application/vnd.kubernetes.protobuf),
// which kubectl's typed clients send for `create deployment`, `create namespace`,
// `run`...: the "k8s\0" magic, a runtime.Unknown envelope naming apiVersion and kind, and
// the object's message. Decoded to the same JSON as a JSON body, from the field table
// generated from k8s.io/api (ProtoSchema+Generated.swift). Answers are always JSON,
// which every client accepts.
//
// As gogo-protobuf writes every non-pointer field, empty strings, false and zero
// integers are dropped (what `omitempty` leaves out in JSON); `replicas` keeps a 0.
// Bounded: nesting at most 64 messages deep, lengths checked against the body.
import Foundation

public struct ProtoField: Sendable {
    public enum Kind: Sendable { case single, repeated, map }
    public var name: String
    public var kind: Kind
    public var type: String

    init(_ name: String, _ kind: Kind, _ type: String) {
        self.name = name
        self.kind = kind
        self.type = type
    }
}

public enum ProtoSchema {
    static let magic: [UInt8] = [0x6b, 0x38, 0x73, 0x00]

    public static func isProtobuf(_ contentType: String) -> Bool {
        contentType.hasPrefix("application/vnd.kubernetes.protobuf")
    }

    public static func decode(_ body: [UInt8]) throws(APIError) -> JSON {
        guard body.count >= 4, Array(body[0..<4]) == magic else {
            throw APIError.badRequest("the body of the request was in an unknown format: a protobuf body starts with the k8s magic number")
        }
        var r = Reader(bytes: body, start: 4, end: body.count)
        var apiVersion = "", kind = ""
        var raw: (Int, Int)?
        while !r.atEnd {
            let (n, wire) = try r.key()
            switch (n, wire) {
            case (1, 2):
                let (s, e) = try r.lengthDelimited()
                var t = Reader(bytes: body, start: s, end: e)
                while !t.atEnd {
                    let (m, w) = try t.key()
                    if w == 2, m == 1 || m == 2 {
                        let (a, b) = try t.lengthDelimited()
                        let text = String(decoding: body[a..<b], as: UTF8.self)
                        if m == 1 { apiVersion = text } else { kind = text }
                    } else { try t.skip(w) }
                }
            case (2, 2): raw = try r.lengthDelimited()
            default: try r.skip(wire)
            }
        }
        guard let root = roots["\(apiVersion)/\(kind)"] else {
            throw APIError(415, "UnsupportedMediaType", "minik reads protobuf bodies of Pods, Services, Deployments and other built-in kinds; not \(apiVersion)/\(kind): send JSON")
        }
        guard let raw else { throw APIError.badRequest("the protobuf body has no object") }
        var o = try message(root, body, raw.0, raw.1, depth: 0)
        o["apiVersion"] = .string(apiVersion)
        o["kind"] = .string(kind)
        return o
    }

    struct Reader {
        let bytes: [UInt8]
        var i: Int
        let end: Int

        init(bytes: [UInt8], start: Int, end: Int) {
            self.bytes = bytes
            i = start
            self.end = end
        }

        var atEnd: Bool { i >= end }

        static func bad() -> APIError { APIError.badRequest("the protobuf body is malformed") }

        mutating func varint() throws(APIError) -> UInt64 {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard i < end, shift < 64 else { throw Reader.bad() }
                let b = bytes[i]
                i += 1
                v |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return v }
                shift += 7
            }
        }

        mutating func key() throws(APIError) -> (Int, Int) {
            let k = try varint()
            guard k >> 3 > 0, k >> 3 < 1 << 29 else { throw Reader.bad() }
            return (Int(k >> 3), Int(k & 7))
        }

        mutating func lengthDelimited() throws(APIError) -> (Int, Int) {
            let n = try varint()
            guard n <= UInt64(end - i) else { throw Reader.bad() }
            let s = i
            i += Int(n)
            return (s, i)
        }

        mutating func fixed(_ n: Int) throws(APIError) -> UInt64 {
            guard end - i >= n else { throw Reader.bad() }
            var v: UInt64 = 0
            for k in 0..<n { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
            i += n
            return v
        }

        mutating func skip(_ wire: Int) throws(APIError) {
            switch wire {
            case 0: _ = try varint()
            case 1: _ = try fixed(8)
            case 2: _ = try lengthDelimited()
            case 5: _ = try fixed(4)
            default: throw Reader.bad()
            }
        }
    }

    static func scalar(_ type: String, _ r: inout Reader, wire: Int) throws(APIError) -> JSON {
        switch (type, wire) {
        case ("string", 2):
            let (s, e) = try r.lengthDelimited()
            return .string(String(decoding: r.bytes[s..<e], as: UTF8.self))
        case ("bytes", 2):
            let (s, e) = try r.lengthDelimited()
            return .string(base64(Array(r.bytes[s..<e])))
        case ("bool", 0): return .bool(try r.varint() != 0)
        case ("int32", 0): return .int(Int64(Int32(truncatingIfNeeded: try r.varint())))
        case ("int64", 0), ("uint64", 0), ("uint32", 0): return .int(Int64(bitPattern: try r.varint()))
        case ("double", 1): return .double(Double(bitPattern: try r.fixed(8)))
        case ("float", 5): return .double(Double(Float(bitPattern: UInt32(try r.fixed(4)))))
        default: throw APIError.badRequest("the protobuf body has a \(type) field with wire type \(wire)")
        }
    }

    static func value(_ type: String, _ bytes: [UInt8], _ r: inout Reader, wire: Int, depth: Int) throws(APIError) -> JSON {
        if messages[type] == nil { return try scalar(type, &r, wire: wire) }
        guard wire == 2 else { throw Reader.bad() }
        let (s, e) = try r.lengthDelimited()
        return try message(type, bytes, s, e, depth: depth + 1)
    }

    static func message(_ type: String, _ bytes: [UInt8], _ start: Int, _ end: Int, depth: Int) throws(APIError) -> JSON {
        guard depth < 64 else { throw APIError.badRequest("the protobuf body nests too deep") }
        let fields = messages[type] ?? [:]
        var r = Reader(bytes: bytes, start: start, end: end)
        var out: [String: JSON] = [:]
        while !r.atEnd {
            let (n, wire) = try r.key()
            guard let f = fields[n] else { try r.skip(wire); continue }
            switch f.kind {
            case .single:
                out[f.name] = try value(f.type, bytes, &r, wire: wire, depth: depth)
            case .repeated:
                var list = out[f.name]?.array ?? []
                if wire == 2, messages[f.type] == nil, f.type != "string", f.type != "bytes" {
                    // Packed scalars.
                    let (s, e) = try r.lengthDelimited()
                    var p = Reader(bytes: bytes, start: s, end: e)
                    while !p.atEnd { list.append(try scalar(f.type, &p, wire: f.type == "double" ? 1 : f.type == "float" ? 5 : 0)) }
                } else {
                    list.append(try value(f.type, bytes, &r, wire: wire, depth: depth))
                }
                out[f.name] = .array(list)
            case .map:
                guard wire == 2 else { throw Reader.bad() }
                let (s, e) = try r.lengthDelimited()
                var entry = Reader(bytes: bytes, start: s, end: e)
                var k = "", v: JSON = f.type == "string" ? "" : [:]
                while !entry.atEnd {
                    let (m, w) = try entry.key()
                    if m == 1 { k = try scalar("string", &entry, wire: w).string ?? "" } else if m == 2 {
                        v = try value(f.type, bytes, &entry, wire: w, depth: depth)
                    } else { try entry.skip(w) }
                }
                var map = out[f.name]?.object ?? [:]
                map[k] = v
                out[f.name] = .object(map)
            }
        }
        return special(type, out)
    }

    /// The types whose JSON form is not an object, and gogo's zero values dropped.
    static func special(_ type: String, _ o: [String: JSON]) -> JSON {
        switch type {
        case "meta.v1.Time", "meta.v1.MicroTime":
            // Years 0001 to 9999 only (Go's time marshalling refuses others).
            guard let s = o["seconds"]?.int, s != 0, s >= -62_135_596_800, s <= 253_402_300_799 else { return .null }
            let seconds = Double(s) + Double(o["nanos"]?.int ?? 0) / 1e9
            return .string(rfc3339(Date(timeIntervalSince1970: seconds)))
        case "intstr.IntOrString":
            return o["type"]?.int == 1 ? (o["strVal"] ?? "") : .int(o["intVal"]?.int ?? 0)
        case "resource.Quantity":
            return o["string"] ?? "0"
        case "runtime.RawExtension":
            if let raw = o["raw"]?.string, let data = unbase64(raw), let j = try? JSON.parse(data) { return j }
            return .null
        default:
            var out: [String: JSON] = [:]
            for (k, v) in o {
                switch v {
                case .string(""), .bool(false), .null: continue
                case .int(0) where k != "replicas": continue
                case .object(let x) where x.isEmpty && k != "emptyDir": continue
                default: out[k] = v
                }
            }
            return .object(out)
        }
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func unbase64(_ s: String) -> [UInt8]? {
        guard let d = Data(base64Encoded: s) else { return nil }
        return [UInt8](d)
    }
}
