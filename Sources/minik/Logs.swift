import ArgumentParser
import Foundation
import MinikRuntime

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a container's output (stdout and stderr).")

    @Option(name: .shortAndLong, help: "Namespace of the pod.") var namespace: String = "default"
    @Option(name: .shortAndLong, help: "The container (default: the pod's only or first container).") var container: String?
    @Flag(name: .shortAndLong, help: "Keep printing what the container writes.") var follow = false
    @Flag(name: .shortAndLong, help: "The previous run of the container (before its last restart).") var previous = false
    @OptionGroup var cluster: ClusterOption
    @Argument(help: "The pod.") var pod: String

    func run() throws {
        try requireRoot("minik logs")
        let name = try cluster.resolve()
        let (state, _) = try clusterState(name)
        guard let p = state.pod(pod, namespace: namespace) else {
            throw CLIError("pod \"\(pod)\" not found in namespace \(namespace)")
        }
        let c = try pick(container, in: p, preferRunning: false)
        // Waiting (in back-off) means the current attempt has not run yet: show the last one.
        var attempt = c.state == .waiting ? max(c.restartCount - 1, 0) : c.restartCount
        if previous {
            guard c.restartCount > 0 else {
                throw CLIError("previous terminated container \"\(c.name)\" in pod \"\(pod)\" not found")
            }
            attempt = c.state == .waiting ? max(c.restartCount - 2, 0) : c.restartCount - 1
        }
        var path = ContainerRunner.logFile(name, namespace: namespace, pod: pod, container: c.name, attempt: attempt)
        if !FileManager.default.fileExists(atPath: path) {
            // In back-off, or a fast crash loop moved on (only two runs are kept): the
            // latest run up to that one.
            let dir = ContainerRunner.logDir(name, namespace: namespace, pod: pod, container: c.name)
            let runs = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).compactMap { f -> Int? in
                f.hasSuffix(".log") ? Int(f.dropLast(4)) : nil
            }
            if let run = runs.filter({ $0 <= attempt }).max() ?? (previous ? nil : runs.max()) {
                path = ContainerRunner.logFile(name, namespace: namespace, pod: pod, container: c.name, attempt: run)
            }
        }
        guard var handle = FileHandle(forReadingAtPath: path) else {
            throw CLIError("container \"\(c.name)\" in pod \"\(pod)\" has no logs yet")
        }
        let out = FileHandle.standardOutput
        out.write(handle.readDataToEndOfFile())
        guard follow else { return }
        signal(SIGPIPE, SIG_DFL)
        while true {
            let more = handle.readDataToEndOfFile()
            if !more.isEmpty { out.write(more); continue }
            usleep(200_000)
            // Rotated (the path is a new file now): finish the old one, go on with the new.
            var now = stat(), open = stat()
            if stat(path, &now) == 0, fstat(handle.fileDescriptor, &open) == 0, now.st_ino != open.st_ino,
               let next = FileHandle(forReadingAtPath: path) {
                out.write(handle.readDataToEndOfFile())
                handle = next
            }
        }
    }
}
