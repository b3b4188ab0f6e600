// Local images: directories built by `make` (images/build.sh), each a root filesystem and
// an image.json with the default command, working directory and environment. No
// registry: a reference with a registry, repository path, tag or digest resolves to the
// local image of its last name ("docker.io/library/busybox:1.36" -> busybox). So the
// Kubernetes e2e image, "registry.k8s.io/e2e-test-images/agnhost:2.53" (formerly under
// k8s.gcr.io/e2e-test-images and gcr.io/kubernetes-e2e-test-images), is our `agnhost`
// image: the netexec binary as /agnhost, with agnhost's entrypoint and default command.
import Foundation
import MinikSpec

public struct ImageConfig: Codable, Sendable, Equatable {
    /// Docker's ENTRYPOINT and CMD: a container's `command` replaces the entrypoint, its
    /// `args` replace the command, as in Kubernetes.
    public var entrypoint: [String]?
    public var command: [String]
    public var workingDir: String?
    public var env: [String]

    /// The argv a container runs.
    public func argv(command c: [String], args: [String]) -> [String] {
        if !c.isEmpty { return c + args }
        return (entrypoint ?? []) + (args.isEmpty ? command : args)
    }
}

public struct Image: Sendable {
    public var name: String
    public var rootfs: String
    public var config: ImageConfig
}

public struct ImageStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// $MINIK_IMAGES, or the images built next to the minik binary (.build/images).
    public static func located() -> ImageStore {
        if let d = ProcessInfo.processInfo.environment["MINIK_IMAGES"] { return ImageStore(directory: d) }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        // .build/<triple>/<config>/minik (or .build/<config>/minik) -> .build/images
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("images").path
            if FileManager.default.fileExists(atPath: candidate) { return ImageStore(directory: candidate) }
            dir = dir.deletingLastPathComponent()
        }
        return ImageStore(directory: URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("images").path)
    }

    /// "registry.example/library/busybox:1.36@sha256:..." -> "busybox".
    public static func localName(_ reference: String) -> String {
        var r = reference
        if let at = r.firstIndex(of: "@") { r = String(r[..<at]) }
        let last = r.split(separator: "/").last.map(String.init) ?? r
        if let colon = last.firstIndex(of: ":") { return String(last[..<colon]) }
        return last
    }

    public var available: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            !$0.hasPrefix(".") && FileManager.default.fileExists(atPath: "\(directory)/\($0)/image.json")
        }.sorted()
    }

    public func image(_ reference: String) -> Image? {
        let name = Self.localName(reference)
        let dir = "\(directory)/\(name)"
        guard let data = FileManager.default.contents(atPath: "\(dir)/image.json"),
              let config = try? JSONDecoder().decode(ImageConfig.self, from: data) else { return nil }
        return Image(name: name, rootfs: "\(dir)/rootfs", config: config)
    }

    /// Throws every problem with the images a spec uses (problems(in:)). `validate` and
    /// `up` both check a spec file with this, so what validate calls valid, up accepts.
    public func check(_ spec: ClusterSpec) throws(SpecError) {
        let found = problems(in: spec)
        if !found.isEmpty { throw SpecError(found) }
    }

    /// Problems with the images a spec uses: unknown images (listing the available ones)
    /// and containers with no command whose image has no default. Each names its place.
    public func problems(in spec: ClusterSpec) -> [SpecProblem] {
        var out: [SpecProblem] = []
        var seen = Set<String>()
        // Each image read once (a thousand pods of one image are one read).
        var images: [String: Image?] = [:]
        func image(_ reference: String) -> Image? {
            if let known = images[reference] { return known }
            let found = self.image(reference)
            images[reference] = found
            return found
        }
        // The pods, and the templates of Deployments (whose pods come later).
        for pod in spec.pods + spec.deployments.map(\.template) {
            for c in pod.initContainers + pod.containers {
                let key = "\(c.source?.description ?? "")"
                guard let image = image(c.image) else {
                    if seen.insert(key).inserted {
                        let list = available
                        out.append(SpecProblem(c.source, "unknown image \"\(c.image)\" (available: \(list.isEmpty ? "none; build them with `make`" : list.joined(separator: ", ")))"))
                    }
                    continue
                }
                if image.config.argv(command: c.command, args: c.args).isEmpty && seen.insert(key).inserted {
                    out.append(SpecProblem(c.source, "container \"\(c.name)\" has no command and image \(image.name) has no default command"))
                }
            }
        }
        return out
    }
}
