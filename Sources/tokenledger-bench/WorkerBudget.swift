import Foundation

/// The worker's time budget of one batch, read from its `/metrics` at the end of a run: the
/// sums and counts of `tokenledger_batch_seconds{phase, thread}` (see the worker's `BatchPhase`).
struct WorkerBudget {
    /// Seconds summed per `thread/phase`, and how many batches each phase was recorded for.
    var seconds: [String: Double] = [:]
    var counts: [String: Double] = [:]
    /// Batches whose `thread/phase` took at most `le` seconds, per histogram bucket: which phase
    /// makes a latency tail (a few long merges, say) the averages hide.
    var buckets: [String: [Double: Double]] = [:]

    /// The loop thread's phases, in the order a batch goes through them, split into CPU and waits.
    static let loopCPU = ["apply", "encode", "other", "chores"]
    static let loopWaits = ["take", "send", "commit", "checkpoint", "merge"]

    /// Batches the worker recorded (the loop phases are recorded for every batch).
    var batches: Double { counts["loop/take"] ?? 0 }

    /// Microseconds per batch in `key` (`thread/phase`), over every batch.
    func perBatch(_ key: String) -> Double {
        guard batches > 0 else { return 0 }
        return (seconds[key] ?? 0) / batches * 1e6
    }

    /// What was recorded after `earlier` (a reading of the same worker).
    func since(_ earlier: WorkerBudget?) -> WorkerBudget {
        guard let earlier else { return self }
        var d = self
        for (k, v) in earlier.seconds { d.seconds[k, default: 0] -= v }
        for (k, v) in earlier.counts { d.counts[k, default: 0] -= v }
        for (k, byBound) in earlier.buckets {
            for (le, v) in byBound { d.buckets[k, default: [:]][le, default: 0] -= v }
        }
        return d
    }

    /// Parses Prometheus text: `tokenledger_batch_seconds_sum{phase="apply",thread="loop"} 1.25`.
    init(prometheusText text: String) {
        for line in text.split(separator: "\n") where line.hasPrefix("tokenledger_batch_seconds_") {
            let isSum = line.hasPrefix("tokenledger_batch_seconds_sum{")
            let isBucket = line.hasPrefix("tokenledger_batch_seconds_bucket{")
            guard isSum || isBucket || line.hasPrefix("tokenledger_batch_seconds_count{"),
                  let close = line.lastIndex(of: "}"), let value = Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces))
            else { continue }
            let open = line.firstIndex(of: "{").map { line.index(after: $0) } ?? close
            let labels = line[open..<close]
            var phase = "", thread = "", le = ""
            for pair in labels.split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                let v = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                if kv[0] == "phase" { phase = v } else if kv[0] == "thread" { thread = v } else if kv[0] == "le" { le = v }
            }
            let key = "\(thread)/\(phase)"
            if isBucket {
                if let bound = Double(le) { buckets[key, default: [:]][bound, default: 0] += value }
            } else if isSum { seconds[key, default: 0] += value } else { counts[key, default: 0] += value }
        }
    }

    /// Fetches and parses `http://127.0.0.1:<port>/metrics`; nil when the worker does not answer
    /// or exports no budget (a build before it had one).
    static func read(port: UInt16) -> WorkerBudget? {
        guard let text = httpGet(port: port, path: "/metrics") else { return nil }
        let budget = WorkerBudget(prometheusText: text)
        return budget.counts.isEmpty ? nil : budget
    }

    /// Adds the budget of an average batch to the report, loop thread first (CPU, then waits),
    /// then the other threads' work on it.
    func report(_ report: Report, _ scenario: String, label: String) {
        func list(_ phases: [String], thread: String = "loop") -> String {
            phases.map { String(format: "%@ %.0f", $0, perBatch("\(thread)/\($0)")) }.joined(separator: ", ")
        }
        let cpu = Self.loopCPU.reduce(0) { $0 + perBatch("loop/\($1)") }
        let waits = Self.loopWaits.reduce(0) { $0 + perBatch("loop/\($1)") }
        report.add(scenario, "  one batch, loop thread, \(label)", (cpu + waits) / 1000, .ms,
                   note: String(format: "%.0f batches; µs on CPU %.0f (", batches, cpu) + list(Self.loopCPU)
                       + String(format: "), waiting %.0f (", waits) + list(Self.loopWaits) + ")")
        // The loop phases that took over 5 ms in some batches: where a latency tail comes from.
        let long = (Self.loopCPU + Self.loopWaits).compactMap { phase -> String? in
            let key = "loop/\(phase)"
            guard let count = counts[key], let within = buckets[key]?.first(where: { abs($0.key - 0.005) < 1e-9 })?.value,
                  count - within >= 0.5 else { return nil }
            return String(format: "%@ %.0f", phase, count - within)
        }
        if !long.isEmpty { report.log("\(scenario), \(label): batches with a loop phase over 5 ms: " + long.joined(separator: ", ")) }
        let others = seconds.keys.filter { !$0.hasPrefix("loop/") }.sorted()
        if !others.isEmpty {
            report.add(scenario, "  same batch, other threads", others.reduce(0) { $0 + perBatch($1) } / 1000, .ms,
                       note: "µs " + others.map { String(format: "%@ %.0f", $0, perBatch($0)) }.joined(separator: ", "))
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released), for the worker's operator endpoints.
func freeLocalPort() -> UInt16? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    return bound ? UInt16(bigEndian: address.sin_port) : nil
}

/// `GET path` on 127.0.0.1:`port` over HTTP/1.0; the body, or nil.
func httpGet(port: UInt16, path: String) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { return nil }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else { return nil }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        response += chunk[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard text.hasPrefix("HTTP/1.") && text.contains(" 200 "), let split = text.range(of: "\r\n\r\n") else { return nil }
    return String(text[split.upperBound...])
}
