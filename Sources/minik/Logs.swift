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
        if previous && c.restartCount == 0 {
            throw CLIError("previous terminated container \"\(c.name)\" in pod \"\(pod)\" not found")
        }
        let path = ContainerRunner.logPath(name, pod: p, container: c, previous: previous)
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
