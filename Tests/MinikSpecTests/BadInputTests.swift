import Foundation
import MinikRuntime
import MinikSpec
import Testing

/// A Pod document whose only container is `busybox` with `extra` (YAML lines at the
/// container's indentation, written without it) and whose metadata has `meta` lines.
func podWith(_ name: String = "a", container extra: String = "", meta: String = "", spec: String = "") -> String {
    """
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: \(name)
    \(indent(meta, 2))
    spec:
    \(indent(spec, 2))
      containers:
      - name: c
        image: busybox
    \(indent(extra, 4))

    """
}

/// `n` containers named <prefix>0... in YAML flow style.
func containerList(_ n: Int, prefix: String = "c") -> String {
    "[" + (0..<n).map { "{name: \(prefix)\($0), image: busybox}" }.joined(separator: ", ") + "]"
}

@Suite("Bad input: quantities, counts and sizes")
struct QuantityAndCountTests {
    @Test func quantitiesFollowTheKubernetesGrammar() throws {
        #expect(Quantity.bytes("64Mi") == 67_108_864)
        #expect(Quantity.bytes("1Gi") == 1_073_741_824)
        #expect(Quantity.bytes("500M") == 500_000_000)
        #expect(Quantity.bytes("1e3") == 1000)
        #expect(Quantity.bytes("1E3") == 1000)
        #expect(Quantity.bytes("2E") == 2_000_000_000_000_000_000) // E alone is exa
        #expect(Quantity.bytes("1.5Gi") == 1_610_612_736)
        #expect(Quantity.bytes("+1k") == 1000)
        #expect(Quantity.bytes("1.") == 1)
        #expect(Quantity.bytes(".5") == 1) // a fraction of a byte rounds up
        #expect(Quantity.bytes("1m") == 1)
        #expect(Quantity.bytes("7Ei") == 8_070_450_532_247_928_832)
        #expect(Quantity.bytes("12e-1") == 2)
        #expect(Quantity.bytes("0") == 0)
        #expect(Quantity.milliCPU("500m") == 500)
        #expect(Quantity.milliCPU("0.25") == 250)
        #expect(Quantity.milliCPU("1e-300") == 1)
        #expect(Quantity.milliCPU("100u") == 1)
        #expect(Quantity.milliCPU("2k") == 2_000_000)
        // Out of range: nil, never a trap.
        for big in ["1e30", "99999999Ti", "8Ei", "9223372036854775808", "1e999999999999999999999", "10E"] {
            #expect(Quantity.bytes(big) == nil, "\(big)")
            #expect(Quantity(big) != nil, "\(big) is a quantity, only too large")
        }
        #expect(Quantity.milliCPU("1e300") == nil)
        #expect(Quantity.milliCPU("9223372036854775807") == nil)
        #expect(Quantity.bytes("9223372036854775807") == Int64.max)
        // Not the grammar.
        for bad in ["", "1e", "1e+", "NaN", "nan", ".inf", "inf", "-", "+", ".", "12x", " 1", "1 ", "1 Gi", "1.5.2",
                    "1K", "1ki", "0x10", "1e3.5", "1Mi1", "e3", "Mi", "--1", "1,5"] {
            #expect(Quantity(bad) == nil, "\"\(bad)\"")
        }
        #expect(try #require(Quantity("-1Gi")).isNegative)
        #expect(try #require(Quantity("-0")).isNegative == false)
        #expect(Quantity.bytes("-1") == nil)
    }

    @Test(arguments: [
        ("memory: \"1e30\"", "limits", "too large"), ("memory: \"99999999Ti\"", "limits", "too large"),
        ("cpu: \"1e300\"", "limits", "too large"), ("cpu: 1e300", "requests", "too large"),
        ("memory: \"-64Mi\"", "limits", "negative"), ("cpu: \"-1\"", "requests", "negative"),
        ("memory: \"1e\"", "limits", "not valid"), ("memory: .nan", "limits", "not valid"),
        ("memory: .inf", "requests", "not valid"), ("ephemeral-storage: \"1 Gi\"", "limits", "not valid"),
        ("memory: \"0\"", "limits", "below the 6Mi minimum"), ("memory: 5Mi", "limits", "below the 6Mi minimum"),
        ("memory: 1m", "limits", "below the 6Mi minimum"),
    ])
    func badQuantityIsRejectedAtItsField(entry: String, key: String, phrase: String) {
        let text = clusterHeader + podWith(container: "resources:\n  \(key): {\(entry)}")
        let resource = String(entry.prefix { $0 != ":" })
        expectRejected(text, field: "spec.containers[0].resources.\(key).\(resource)", line: line(of: entry, in: text), saying: phrase)
    }

    @Test func requestAboveItsLimit() {
        let text = clusterHeader + podWith(container: "resources:\n  limits: {memory: 64Mi, cpu: 500m}\n  requests: {memory: 1Gi, cpu: 250m}")
        expectRejected(text, field: "spec.containers[0].resources.requests.memory", line: line(of: "requests:", in: text),
                       saying: "memory request is more than the memory limit")
    }

    @Test func goodResourcesAreAccepted() throws {
        let text = clusterHeader + podWith(container: "resources:\n  limits: {memory: 6Mi, cpu: \"1e-3\", ephemeral-storage: 1Gi}\n  requests: {memory: \"0\", cpu: 1m}")
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        let limit: Int64 = try #require(spec.pods.first { $0.name == "a" }?.containers.first?.memoryLimit)
        #expect(limit == SpecLoader.minMemoryLimit)
        #expect(limit == 6_291_456)
    }

    @Test func replicasBeyondThePodAddressesAreRefusedBeforeAnyPodIsMade() {
        // 3 nodes: 3 x 253 pod addresses. A billion replicas is counted, not allocated
        // (expanded, they took 8 GB and minutes: this test would not end).
        let text = clusterHeader + deployment("web", replicas: 1000000000)
        expectRejected(text, field: "spec.replicas", line: line(of: "replicas: 1000000000", in: text),
                       saying: "replicas 1000000000 is more than the 759 pod addresses of the cluster's 3 nodes")
    }

    @Test func replicasOfAllDeploymentsCountTogether() {
        // 2 cluster DNS pods + 500 = 502; 300 more is 802 > 759.
        let text = clusterHeader + deployment("a", replicas: 500) + deployment("b", replicas: 300)
        expectRejected(text, field: "spec.replicas", line: line(of: "replicas: 300", in: text),
                       saying: "would bring the cluster to 802 pods (502 besides this Deployment's), more than the 759 pod addresses")
    }

    @Test func replicasAreCheckedAgainstARunningClusterOnApply() throws {
        let base = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 3), file: "c.yaml")
        let text = deployment("web", replicas: 99999999999)
        expectRejected(text, field: "spec.replicas", line: line(of: "replicas:", in: text), saying: "is more than the 759 pod addresses",
                       base: base, file: "more.yaml")
        // Replacing the Deployment's own pods is no growth: 750 of 759 fit.
        var rng = SystemRandomNumberGenerator()
        let grown = try SpecLoader.apply(deployment("web", replicas: 500), file: "more.yaml", to: base)
            .rolledOut(RolloutObservation(), random: &rng).spec
        #expect(grown.pods.filter { $0.owner == "Deployment/web" }.count == 500)
    }

    @Test func scaleIsCheckedBeforeAnyPodIsMade() throws {
        let spec = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 2), file: "c.yaml")
        let error = #expect(throws: SpecError.self) {
            _ = try spec.scaled(deployment: "web", namespace: "default", replicas: 1_000_000_000)
        }
        #expect(error?.description.contains("replicas 1000000000 is more than the 759 pod addresses") == true)
        var rng = SystemRandomNumberGenerator()
        #expect(try spec.scaled(deployment: "web", namespace: "default", replicas: 10).rolledOut(RolloutObservation(), random: &rng).spec.pods.count == 12)
    }

    @Test func probeNumbersBeyondInt32AreRefusedNotTrapped() {
        let text = clusterHeader + podWith(container: "livenessProbe: {exec: {command: [\"true\"]}, failureThreshold: 9223372036854775807}")
        expectRejected(text, field: "spec.containers[0].livenessProbe.failureThreshold", line: line(of: "livenessProbe", in: text),
                       saying: "failureThreshold must be 1 or more, at most 2147483647")
    }

    @Test func tooManyContainersInAPod() throws {
        let text = clusterHeader + podWith(spec: "initContainers: []").replacingOccurrences(
            of: "  containers:\n  - name: c\n    image: busybox", with: "  containers: \(containerList(10_000))")
        expectRejected(text, field: "spec.containers", line: line(of: "containers: [", in: text),
                       saying: "the pod has 10000 containers and 0 init containers; minik runs at most 256")
        let inits = clusterHeader + podWith(spec: "initContainers: \(containerList(100, prefix: "i"))").replacingOccurrences(
            of: "  containers:\n  - name: c\n    image: busybox", with: "  containers: \(containerList(200))")
        expectRejected(inits, field: "spec.initContainers", line: line(of: "initContainers:", in: inits), saying: "200 containers and 100 init containers")
        let full = clusterHeader + podWith(spec: "initContainers: \(containerList(56, prefix: "i"))").replacingOccurrences(
            of: "  containers:\n  - name: c\n    image: busybox", with: "  containers: \(containerList(200))")
        #expect(try SpecLoader.parse(full, file: "c.yaml").pods.first { $0.name == "a" }?.containers.count == 200)
    }
}

@Suite("Bad input: names, labels, env and NUL bytes")
struct NamesAndTextTests {
    @Test(arguments: ["\"PATH=/evil:\"", "\"\"", "\"A\\tB\"", "\"caf\\u00e9\"", "\"A\\nB\""])
    func envNameIsRefused(name: String) {
        let text = clusterHeader + podWith(container: "env:\n- {name: \(name), value: x}")
        expectRejected(text, field: "spec.containers[0].env[0].name", line: line(of: "- {name:", in: text),
                       saying: "printable ASCII but '='")
    }

    @Test func envNameIsRequired() {
        let text = clusterHeader + podWith(container: "env:\n- {value: x}")
        expectRejected(text, field: "spec.containers[0].env[0]", line: line(of: "- {value: x}", in: text), saying: "env name is required")
    }

    @Test func envNamesKubernetes132AcceptsAndDuplicatesKeepTheirOrder() throws {
        let text = clusterHeader + podWith(container: "env:\n- {name: A B, value: \"1\"}\n- {name: my.env-name, value: x}\n- {name: 1ST, value: y}\n- {name: X, value: a}\n- {name: X, value: b}")
        let env = try #require(try SpecLoader.parse(text, file: "c.yaml").pods.first { $0.name == "a" }?.containers.first?.env)
        #expect(env.map(\.name) == ["A B", "my.env-name", "1ST", "X", "X"])
        #expect(env.last?.value == "b") // the runtime sets them in order: the last one wins
    }

    @Test(arguments: [
        ("command: [sh, \"-c\\0rm\"]", "spec.containers[0].command[1]"),
        ("args: [\"a\\0b\"]", "spec.containers[0].args[0]"),
        ("env: [{name: A, value: \"x\\0y\"}]", "spec.containers[0].env[0].value"),
        ("workingDir: \"/tmp\\0/x\"", "spec.containers[0].workingDir"),
        ("readinessProbe: {exec: {command: [\"true\\0\"]}}", "spec.containers[0].readinessProbe.exec.command[0]"),
    ])
    func nulByteIsRefused(entry: String, field: String) {
        let text = clusterHeader + podWith(container: entry)
        expectRejected(text, field: field, line: line(of: String(entry.prefix(8)), in: text), saying: "NUL byte")
    }

    @Test(arguments: [
        ("\"bad key\": x", "label key \"bad key\""), ("\"a/b/c\": x", "one '/' at most"),
        ("\"Example.com/app\": x", "is not a DNS subdomain"), ("\"example.com/\": x", "must not be empty"),
        ("\"-app\": x", "name part \"-app\""), ("\(String(repeating: "k", count: 64)): x", "at most 63"),
        ("app: \"has space\"", "label value \"has space\""), ("app: \(String(repeating: "v", count: 64))", "label value"),
        ("app: \"-x\"", "label value \"-x\""),
    ])
    func badLabelIsRefused(entry: String, phrase: String) {
        let text = clusterHeader + podWith(meta: "labels: {\(entry)}")
        expectRejected(text, field: "metadata.labels", line: line(of: "labels:", in: text), saying: phrase)
    }

    @Test func labelsAreCheckedWhereverTheyAre() {
        let nodeLabels = clusterHeader.replacingOccurrences(of: "- role: worker\n- role: worker", with: "- role: worker\n  labels: {\"disk type\": ssd}\n- role: worker")
        expectRejected(nodeLabels, field: "nodes[1].labels", line: line(of: "disk type", in: nodeLabels), saying: "label key \"disk type\"")
        let selector = clusterHeader + podWith(spec: "nodeSelector: {disk: \"fast ssd\"}")
        expectRejected(selector, field: "spec.nodeSelector", line: line(of: "nodeSelector", in: selector), saying: "label value \"fast ssd\"")
        let match = clusterHeader + deployment("web", replicas: 1).replacingOccurrences(of: "{matchLabels: {app: web}}", with: "{matchLabels: {\"a b\": web}}")
        expectRejected(match, field: "spec.selector.matchLabels", line: line(of: "matchLabels", in: match), saying: "label key \"a b\"", count: 2)
        let svc = clusterHeader + service("s", "selector: {\"\": x}\nports: [{port: 80}]")
        expectRejected(svc, field: "spec.selector", line: line(of: "selector:", in: svc), saying: "the name part must not be empty")
    }

    @Test func annotationKeysAreQualifiedNamesAndTheirSizeIsBounded() throws {
        let bad = clusterHeader + podWith(meta: "annotations: {\"not a key\": fine value}")
        expectRejected(bad, field: "metadata.annotations", line: line(of: "not a key", in: bad), saying: "annotation key \"not a key\"")
        let big = clusterHeader + podWith(meta: "annotations: {note: \(String(repeating: "x", count: 300_000))}")
        expectRejected(big, field: "metadata.annotations", line: line(of: "annotations:", in: big), saying: "256 KiB")
    }

    @Test func goodLabelsAndAnnotationsAreAccepted() throws {
        let text = clusterHeader + podWith(meta: "labels: {app.kubernetes.io/name: web, A_b.c-9: \"\", tier: Front_end.1}\nannotations: {example.com/note: \"any text, with spaces = and :\"}")
        let pod = try #require(try SpecLoader.parse(text, file: "c.yaml").pods.first { $0.name == "a" })
        #expect(pod.labels == ["app.kubernetes.io/name": "web", "A_b.c-9": "", "tier": "Front_end.1"])
        #expect(pod.annotations["example.com/note"] == "any text, with spaces = and :")
    }

    @Test func qualifiedNames() {
        for good in ["app", "app.kubernetes.io/name", "a", "A-b_c.9", "x/\(String(repeating: "n", count: 63))"] {
            #expect(Names.qualifiedNameProblem(good) == nil, "\(good)")
        }
        for bad in ["", "/", "a/", "/a", "a b", "a/b/c", "-a", "a-", "UP.example/a", "\(String(repeating: "n", count: 64))", "é"] {
            #expect(Names.qualifiedNameProblem(bad) != nil, "\(bad)")
        }
        #expect(Names.isLabelValue(""))
        #expect(!Names.isLabelValue("a b"))
    }
}

@Suite("Bad input: images, empty files")
struct ImageAndFileTests {
    @Test func imageReferences() {
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        for good in ["busybox", "busybox:1.36", "library/busybox", "docker.io/library/busybox:1.36", "localhost/x",
                     "localhost:5000/team/app:v1.2-rc_3", "registry.example/busybox@\(digest)", "busybox:latest@\(digest)",
                     "my_app", "my__app", "my-app", "my---app", "a.b", "[::1]:5000/busybox", "Registry.Example:443/x"] {
            #expect(ImageReference.problem(good) == nil, "\(good)")
        }
        for bad in ["..", "../../etc", "/bin/sh", ".", "Busybox", "busybox:", ":tag", "busybox@sha256:abc", "a//b", "a/",
                    "my___app", "-app", "app-", "a..b", "busybox:-1", "busybox:\(String(repeating: "t", count: 129))",
                    " busybox", "busybox ", "bad host:5000/x", "host:port/x", String(repeating: "a", count: 256)] {
            #expect(ImageReference.problem(bad) != nil, "\(bad)")
        }
    }

    @Test(arguments: ["..", "../../etc", "/bin/sh", "busybox:", "UPPER"])
    func imageThatIsNoReferenceIsRefusedInTheSpec(image: String) {
        let text = clusterHeader + podWith().replacingOccurrences(of: "image: busybox", with: "image: \"\(image)\"")
        expectRejected(text, field: "spec.containers[0].image", line: line(of: "image: \"", in: text), saying: "is not an image reference")
    }

    @Test func validateAndUpShareOneImageCheck() throws {
        let dir = NSTemporaryDirectory() + "minik-images-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for image in ["busybox", "minik-dns"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(image)", withIntermediateDirectories: true)
            try Data(#"{"command": ["sh"], "env": []}"#.utf8).write(to: URL(fileURLWithPath: "\(dir)/\(image)/image.json"))
        }
        let store = ImageStore(directory: dir)
        let good = try SpecLoader.parse(clusterHeader + podWith(), file: "c.yaml")
        try store.check(good)
        let text = clusterHeader + podWith().replacingOccurrences(of: "image: busybox", with: "image: docker.io/library/nginx:1.27")
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        let error = #expect(throws: SpecError.self) { try store.check(spec) }
        #expect(error?.problems.count == 1)
        let d = error?.description ?? ""
        #expect(d.hasPrefix("c.yaml:\(line(of: "nginx", in: text)):"), "\(d)")
        #expect(d.contains(": spec.containers[0].image: unknown image \"docker.io/library/nginx:1.27\" (available: busybox, minik-dns)"), "\(d)")
    }

    @Test(arguments: ["", "\n", "# only a comment\n# and another\n", "---\n", "---\n---\n# c\n", "~\n", "--- # x\n...\n"])
    func emptyFileSaysThereIsNothingInIt(text: String) {
        expectRejected(text, field: "", line: 1, saying: "there is nothing in the file", file: "empty.yaml")
    }

    @Test func emptyFileAppliesNothing() throws {
        let base = try SpecLoader.parse(clusterHeader, file: "c.yaml")
        expectRejected("# nothing\n", field: "", line: 1, saying: "nothing in the file to apply", base: base, file: "none.yaml")
    }

    @Test func malformedYAMLIsStillReportedAsSuch() {
        let p = problems("foo: [\n")
        #expect(p.count == 1)
        #expect(p.first?.message.contains("malformed YAML") == true)
    }
}

@Suite("fieldValidation: Strict refuses unknown fields, Warn drops them")
struct FieldValidationTests {
    @Test func unknownFieldsAreWarningsWhenNotStrict() throws {
        let base = try SpecLoader.parse(clusterHeader, file: "c.yaml")
        let text = pod("p").replacingOccurrences(of: "containers:", with: "colour: blue\n  containers:")
        #expect(text.contains("colour: blue"))
        expectRejected(text, field: "spec.colour", line: line(of: "colour", in: text), saying: "unknown field \"colour\"", base: base, file: "p.yaml")
        let warned = try SpecLoader.apply(text, file: "p.yaml", to: base, strict: false)
        #expect(warned.pods.contains { $0.name == "p" })
        #expect(warned.warnings.contains { $0.contains("unknown field \"spec.colour\"") }, "\(warned.warnings)")
    }
}
