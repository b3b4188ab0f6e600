// Kubernetes API objects as JSON values (as client-go's unstructured.Unstructured holds
// them): the server patches, filters, stores and prints objects generically, keeps
// every field a client wrote, and knows the types only where it reads or writes a field.
// Integers stay integers (an exitCode or a port is never 80.0), object keys are written
// sorted (as Go marshals maps), and the parser is strict: one value, UTF-8, no trailing
// bytes, nesting at most 200 deep, so no input can exhaust the stack.
import Foundation

public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    public subscript(key: String) -> JSON? {
        get {
            if case .object(let o) = self { return o[key] }
            return nil
        }
        set {
            guard case .object(var o) = self else { return }
            o[key] = newValue
            self = .object(o)
        }
    }

    /// The value at a path of keys, nil where one is missing.
    public subscript(path keys: String...) -> JSON? {
        var v: JSON? = self
        for k in keys { v = v?[k] }
        return v
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var int: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 9e15: return Int64(d)
        default: return nil
        }
    }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var object: [String: JSON]? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { self == .null }

    /// A map of strings (labels, annotations, a selector); nil when it is not one.
    public var stringMap: [String: String]? {
        guard let o = object else { return self == .null ? [:] : nil }
        var out: [String: String] = [:]
        for (k, v) in o {
            guard let s = v.string else { return nil }
            out[k] = s
        }
        return out
    }

    public static func strings(_ m: [String: String]) -> JSON { .object(m.mapValues { .string($0) }) }

    /// The JSON type name as Go's decoder words it in errors.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "bool"
        case .int, .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(Int64(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        var o: [String: JSON] = [:]
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
    public init(nilLiteral: ()) { self = .null }
    public init(floatLiteral value: Double) { self = .double(value) }
}

// MARK: - writing

extension JSON {
    /// Compact JSON, keys sorted.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return out
    }

    public var text: String { String(decoding: serialized(), as: UTF8.self) }

    /// Indented as `kubectl -o json` prints (4 spaces, keys sorted).
    public func pretty(indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent + 4), end = String(repeating: " ", count: indent)
        switch self {
        case .array(let a):
            if a.isEmpty { return "[]" }
            return "[\n" + a.map { pad + $0.pretty(indent: indent + 4) }.joined(separator: ",\n") + "\n\(end)]"
        case .object(let o):
            if o.isEmpty { return "{}" }
            return "{\n" + o.keys.sorted().map { k in
                var key: [UInt8] = []
                JSON.writeString(k, into: &key)
                return pad + String(decoding: key, as: UTF8.self) + ": " + o[k]!.pretty(indent: indent + 4)
            }.joined(separator: ",\n") + "\n\(end)}"
        default:
            return text
        }
    }

    /// The value tree Yams (and JSONSerialization) work with.
    public var any: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let b): return b
        case .int(let i): return Int(i)
        case .double(let d): return d
        case .string(let s): return s
        case .array(let a): return a.map(\.any)
        case .object(let o): return o.mapValues(\.any)
        }
    }

    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: [110, 117, 108, 108])
        case .bool(let b): out.append(contentsOf: b ? Array("true".utf8) : Array("false".utf8))
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d):
            if d.isFinite {
                if d == d.rounded() && abs(d) < 1e15 { out.append(contentsOf: String(Int64(d)).utf8) } else { out.append(contentsOf: "\(d)".utf8) }
            } else {
                out.append(contentsOf: [110, 117, 108, 108])
            }
        case .string(let s): JSON.writeString(s, into: &out)
        case .array(let a):
            out.append(91)
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(44) }
                v.write(into: &out)
            }
            out.append(93)
        case .object(let o):
            out.append(123)
            for (i, k) in o.keys.sorted().enumerated() {
                if i > 0 { out.append(44) }
                JSON.writeString(k, into: &out)
                out.append(58)
                o[k]!.write(into: &out)
            }
            out.append(125)
        }
    }

    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(34)
        for b in s.utf8 {
            switch b {
            case 34: out.append(contentsOf: [92, 34])
            case 92: out.append(contentsOf: [92, 92])
            case 10: out.append(contentsOf: [92, 110])
            case 13: out.append(contentsOf: [92, 114])
            case 9: out.append(contentsOf: [92, 116])
            case 0..<32, 0x3c, 0x3e, 0x26:
                // Control bytes, and <, >, & as Go escapes them.
                out.append(contentsOf: [92, 117, 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(34)
    }
}

// MARK: - reading

public struct JSONError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

extension JSON {
    public static let maxDepth = 200

    public static func parse(_ text: String) throws(JSONError) -> JSON { try parse(Array(text.utf8)) }

    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSON {
        var p = JSONParser(bytes: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        if p.i != bytes.count { throw JSONError(message: "unexpected data after the top-level value", offset: p.i) }
        return v
    }
}

struct JSONParser {
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 32 || bytes[i] == 10 || bytes[i] == 13 || bytes[i] == 9 { i += 1 }
    }

    func fail(_ m: String) -> JSONError { JSONError(message: m, offset: i) }

    mutating func literal(_ word: String, _ v: JSON) throws(JSONError) -> JSON {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { throw fail("invalid character") }
        i += w.count
        return v
    }

    mutating func value(depth: Int) throws(JSONError) -> JSON {
        guard depth < JSON.maxDepth else { throw fail("nesting deeper than \(JSON.maxDepth)") }
        guard i < bytes.count else { throw fail("unexpected end of JSON input") }
        switch bytes[i] {
        case 123: // {
            i += 1
            var o: [String: JSON] = [:]
            skipSpace()
            if i < bytes.count, bytes[i] == 125 { i += 1; return .object(o) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == 34 else { throw fail("expected a string key") }
                let k = try string()
                skipSpace()
                guard i < bytes.count, bytes[i] == 58 else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                o[k] = try value(depth: depth + 1)
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of JSON input") }
                if bytes[i] == 44 { i += 1; continue }
                if bytes[i] == 125 { i += 1; return .object(o) }
                throw fail("expected ',' or '}'")
            }
        case 91: // [
            i += 1
            var a: [JSON] = []
            skipSpace()
            if i < bytes.count, bytes[i] == 93 { i += 1; return .array(a) }
            while true {
                skipSpace()
                a.append(try value(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of JSON input") }
                if bytes[i] == 44 { i += 1; continue }
                if bytes[i] == 93 { i += 1; return .array(a) }
                throw fail("expected ',' or ']'")
            }
        case 34: return .string(try string())
        case 116: return try literal("true", .bool(true))
        case 102: return try literal("false", .bool(false))
        case 110: return try literal("null", .null)
        default: return try number()
        }
    }

    mutating func number() throws(JSONError) -> JSON {
        let start = i
        if i < bytes.count, bytes[i] == 45 { i += 1 }
        var isInt = true
        var digits = 0
        while i < bytes.count {
            let c = bytes[i]
            if c >= 48 && c <= 57 { digits += 1; i += 1; continue }
            if c == 46 || c == 101 || c == 69 || ((c == 43 || c == 45) && i > start && (bytes[i - 1] == 101 || bytes[i - 1] == 69)) {
                isInt = false
                i += 1
                continue
            }
            break
        }
        guard digits > 0 else { i = start; throw fail("invalid character") }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if isInt, let v = Int64(text) { return .int(v) }
        guard let d = Double(text), d.isFinite else { i = start; throw fail("invalid number") }
        return .double(d)
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 97...102: d = UInt32(c - 87)
            case 65...70: d = UInt32(c - 55)
            default: throw fail("bad \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    mutating func string() throws(JSONError) -> String {
        i += 1 // opening quote
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == 34 { i += 1; break }
            if c < 32 { throw fail("control character in string") }
            if c != 92 { out.append(c); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw fail("unterminated string") }
            let e = bytes[i]
            i += 1
            switch e {
            case 34: out.append(34)
            case 92: out.append(92)
            case 47: out.append(47)
            case 98: out.append(8)
            case 102: out.append(12)
            case 110: out.append(10)
            case 114: out.append(13)
            case 116: out.append(9)
            case 117:
                var u = try hex4()
                if u >= 0xD800 && u < 0xDC00, i + 6 <= bytes.count, bytes[i] == 92, bytes[i + 1] == 117 {
                    i += 2
                    let low = try hex4()
                    if low >= 0xDC00 && low < 0xE000 {
                        u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        // A lone high surrogate: U+FFFD, and the next escape read on its own (as Go does).
                        u = 0xFFFD
                        i -= 6
                    }
                }
                let scalar = Unicode.Scalar(u) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: throw fail("bad escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
        return s
    }
}

// MARK: - conversion from YAML-decoded or Foundation values

extension JSON {
    /// From the value tree Yams (or JSONSerialization) decodes to.
    public init?(any value: Any?) {
        switch value {
        case nil: self = .null
        case let v as JSON: self = v
        // JSONSerialization's numbers are NSNumbers, which cast to Bool when 0 or 1: only
        // its booleans (objCType "c") are booleans.
        case let n as NSNumber where type(of: value!) != Bool.self && String(cString: n.objCType) != "c":
            if let i = Int64(exactly: n.doubleValue), String(cString: n.objCType) != "d" && String(cString: n.objCType) != "f" { self = .int(i) } else {
                let d = n.doubleValue
                self = d == d.rounded() && abs(d) < 9e15 ? .int(Int64(d)) : .double(d)
            }
        case let b as Bool: self = .bool(b)
        case let i as Int: self = .int(Int64(i))
        case let i as Int64: self = .int(i)
        case let d as Double: self = d == d.rounded() && abs(d) < 9e15 ? .int(Int64(d)) : .double(d)
        case let s as String: self = .string(s)
        case let a as [Any?]:
            var out: [JSON] = []
            for e in a {
                guard let j = JSON(any: e) else { return nil }
                out.append(j)
            }
            self = .array(out)
        case let o as [String: Any?]:
            var out: [String: JSON] = [:]
            for (k, e) in o {
                guard let j = JSON(any: e) else { return nil }
                out[k] = j
            }
            self = .object(out)
        case let o as [AnyHashable: Any?]:
            var out: [String: JSON] = [:]
            for (k, e) in o {
                guard let ks = k.base as? String, let j = JSON(any: e) else { return nil }
                out[ks] = j
            }
            self = .object(out)
        default:
            if value is NSNull { self = .null; return }
            return nil
        }
    }
}
