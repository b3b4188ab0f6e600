// MinikAPI's JSON: what a client reads back must be what Go's encoding/json would have
// written (integers as integers, keys sorted, <, > and & escaped as \u003c...), and what
// the server reads must be parsed strictly and without ever trapping, whatever the bytes
// (a request body is untrusted input: trailing data, bad UTF-8, deep nesting, a lone
// surrogate, a sign where a value starts).
import Foundation
import MinikAPI
import Testing

@Suite("API JSON: parsing and writing as Go does")
struct APIJSONTests {
    @Test func parseThenSerializeWritesCompactSortedJSON() throws {
        let text = #"{ "b": 1, "a": [true, null, "x", 1.5, -7], "c": {"z": {}, "y": []} }"#
        let v = try JSON.parse(text)
        #expect(v.text == #"{"a":[true,null,"x",1.5,-7],"b":1,"c":{"y":[],"z":{}}}"#)
        // And the output parses back to the same value.
        #expect(try JSON.parse(v.serialized()) == v)
    }

    @Test func integersStayIntegers() throws {
        let v = try JSON.parse(#"{"port": 80, "exitCode": 0, "big": 9007199254740993, "neg": -2}"#)
        #expect(v["port"] == .int(80))
        #expect(v["exitCode"] == .int(0))
        // Beyond 2^53 an integer would lose digits as a double; it must not.
        #expect(v["big"] == .int(9_007_199_254_740_993))
        #expect(v.text == #"{"big":9007199254740993,"exitCode":0,"neg":-2,"port":80}"#)
        // A whole double is written without a fraction, as Go writes a float64 80.
        #expect(JSON.double(80).text == "80")
        #expect(JSON.double(0.25).text == "0.25")
        #expect(try JSON.parse("1.5") == .double(1.5))
    }

    @Test func keysAreWrittenSorted() {
        let v: JSON = ["metadata": ["name": "x"], "apiVersion": "v1", "kind": "Pod", "Zeta": 1, "alpha": 2]
        // Byte order, as Go sorts map keys: capitals first.
        #expect(v.text == #"{"Zeta":1,"alpha":2,"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}"#)
    }

    @Test func stringsAreEscapedAsGoEscapesThem() {
        #expect(JSON.string("<a href=\"x\">&</a>").text == #""\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e""#)
        #expect(JSON.string("tab\there\nnew\rret\\").text == #""tab\there\nnew\rret\\""#)
        #expect(JSON.string("\u{01}\u{1f}").text == #""\u0001\u001f""#)
        #expect(JSON.string("café 😀").text == "\"café 😀\"")
    }

    @Test func escapesAreDecoded() throws {
        #expect(try JSON.parse(#""\u003c\u003e\u0026\/\b\f\n\r\t\"\\""#) == .string("<>&/\u{08}\u{0c}\n\r\t\"\\"))
        #expect(try JSON.parse(#""\u00e9""#) == .string("é"))
    }

    @Test func surrogatePairsDecodeToOneScalar() throws {
        let v = try JSON.parse(#""\uD83D\uDE00""#)
        #expect(v == .string("😀"))
        #expect(v.string?.unicodeScalars.count == 1)
        #expect(try JSON.parse(#""a\ud83d\ude00b""#) == .string("a😀b"))
        // A lone surrogate is not a scalar: it becomes U+FFFD, as in Go.
        #expect(try JSON.parse(#""\uD83D""#) == .string("\u{FFFD}"))
        #expect(try JSON.parse(#""\uDE00x""#) == .string("\u{FFFD}x"))
    }

    @Test func aHighSurrogateFollowedByAnotherEscapeKeepsThatEscape() throws {
        // Go's decoder (encoding/json unquote) replaces the lone high surrogate and then
        // decodes the next \u escape on its own: "\uD83D\u0041" is "\u{FFFD}A".
        do {
            let v = try JSON.parse(#""\uD83D\u0041""#)
            #expect(v == .string("\u{FFFD}A"))
        }
    }

    @Test(arguments: ["{} x", "1 2", "[1],", "\"a\"\"b\"", "nullx", "{}{}", "truefalse"])
    func trailingBytesAreRejected(_ text: String) {
        #expect(throws: JSONError.self) { try JSON.parse(text) }
    }

    @Test func trailingWhitespaceIsAllowed() throws {
        #expect(try JSON.parse(" {\"a\":1} \n\t\r ") == ["a": 1])
    }

    @Test func invalidUTF8InAStringIsRejected() {
        for bad: [UInt8] in [[0xff], [0xc0, 0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80]] {
            let bytes: [UInt8] = [34] + bad + [34]
            #expect(throws: JSONError.self) { try JSON.parse(bytes) }
        }
        do {
            _ = try JSON.parse([34, 0xff, 34])
            Issue.record("accepted invalid UTF-8")
        } catch {
            #expect(error.message == "invalid UTF-8 in string")
        }
    }

    @Test(arguments: ["", "{", "[1,", "{\"a\"}", "{\"a\":}", "{a:1}", "tru", "nul", "01x", "-", "\"abc", "\"a\u{01}b\"", "\"\\x\"",
                      "\"\\u12G4\"", "1e", "1e999", "[1 2]", "{\"a\":1 \"b\":2}"])
    func malformedInputIsRejected(_ text: String) {
        #expect(throws: JSONError.self) { try JSON.parse(text) }
    }

    @Test func nestingIsBoundedAt200() throws {
        let ok = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: Never.self) { try JSON.parse(ok) }
        let deep = String(repeating: "[", count: 201) + String(repeating: "]", count: 201)
        do {
            _ = try JSON.parse(deep)
            Issue.record("201 levels accepted")
        } catch {
            #expect(error.message == "nesting deeper than 200")
        }
        // Far deeper input is refused at the bound, without exhausting the stack.
        let huge = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONError.self) { try JSON.parse(huge) }
        let hugeArrays = [UInt8](repeating: 91, count: 1_000_000)
        #expect(throws: JSONError.self) { try JSON.parse(hugeArrays) }
    }

    @Test func aBodyStartingWithASignIsRejectedNotTrapped() async {
        // number() looks at bytes[i - 1] when it meets a '+' or '-', which is out of
        // range when the sign is the very first byte: `kubectl create --raw` or any client
        // sending "+1" as a body would crash the server.
        #expect(throws: JSONError.self) { try JSON.parse("[+1]") }
        #expect(throws: JSONError.self) { try JSON.parse(" +1") }
        do {
            await #expect(processExitsWith: .success) {
                _ = try? JSON.parse("+1")
            }
        }
    }

    @Test func accessorsReadTypedValues() throws {
        let v = try JSON.parse(#"{"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"replicas":3.0,"paused":false}}"#)
        #expect(v[path: "metadata", "name"]?.string == "web")
        #expect(v[path: "metadata", "labels"]?.stringMap == ["app": "web"])
        #expect(v[path: "spec", "replicas"]?.int == 3)
        #expect(v[path: "spec", "paused"]?.bool == false)
        #expect(v[path: "spec", "missing", "deeper"] == nil)
        #expect(JSON.null.stringMap == [:])
        #expect(JSON.object(["a": 1]).stringMap == nil)
        #expect(JSON.int(1).typeName == "number")
        #expect(JSON.array([]).typeName == "array")
    }

    @Test func conversionFromYAMLValues() {
        let any: [String: Any?] = ["a": 1, "b": 2.0, "c": 2.5, "d": "x", "e": [true, nil], "f": ["g": "h"]]
        #expect(JSON(any: any) == ["a": 1, "b": 2, "c": 2.5, "d": "x", "e": [true, nil], "f": ["g": "h"]])
        #expect(JSON(any: Date()) == nil)
    }

    @Test func conversionFromJSONSerializationValues() throws {
        // JSONSerialization gives NSNumbers (and NSNull): a 1 or a 0 is a number, never a bool.
        let tree = try JSONSerialization.jsonObject(with: Data(#"{"one":1,"zero":0,"two":2,"yes":true,"no":false,"half":0.5,"none":null,"list":[1,true]}"#.utf8))
        let v = try #require(JSON(any: tree))
        #expect(v["two"] == 2)
        #expect(v["half"] == 0.5)
        #expect(v["yes"] == true)
        #expect(v["none"] == .null)
        do {
            #expect(v.text == #"{"half":0.5,"list":[1,true],"no":false,"none":null,"one":1,"two":2,"yes":true,"zero":0}"#)
        }
    }
}
