import Foundation

/// Progress of a long command (counts, rate, time left) on one line of standard error, redrawn
/// in place, and only when standard error is a terminal: a cron job, a pipe or a log file gets
/// the command's one-line summary on standard output and nothing else.
final class ProgressLine {
    private let label: String
    private let unit: String
    private let drawing: Bool
    /// Off where each count is one long step of its own (a rate of such steps says little).
    private let showsRate: Bool
    private let started = ContinuousClock.now
    private var lastDrawn: ContinuousClock.Instant?
    private var drawn = false
    /// The last count reported: what the summary states.
    private(set) var done: Int64 = 0
    /// Often enough to look alive, rarely enough to cost nothing on a fast pass.
    private static let redrawInterval = Duration.milliseconds(250)

    init(_ label: String, unit: String, showsRate: Bool = true, onTerminal: Bool = isatty(STDERR_FILENO) == 1) {
        self.label = label
        self.unit = unit
        self.showsRate = showsRate
        drawing = onTerminal
    }

    func update(done: Int64, of total: Int64) {
        self.done = done
        guard drawing else { return }
        let now = ContinuousClock.now
        // The first and the last state are always drawn; the ones between at most every interval.
        if let lastDrawn, now - lastDrawn < Self.redrawInterval, done < total { return }
        lastDrawn = now
        var line = "\(label): \(done) of \(total) \(unit)"
        if total > 0 { line += " (\(done * 100 / total)%)" }
        let seconds = Self.seconds(now - started)
        if showsRate, seconds > 0, done > 0 {
            let rate = Double(done) / seconds
            line += ", \(Int64(rate)) \(unit)/s"
            if total > done { line += ", about \(Self.duration(Double(total - done) / rate)) left" }
        }
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        drawn = true
    }

    /// Clears the progress line, so that the summary stands alone; returns the seconds taken.
    func finish() -> Double {
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        drawn = false
        return Self.seconds(ContinuousClock.now - started)
    }

    static func elapsed(_ seconds: Double) -> String { String(format: "%.1f s", seconds) }

    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.up))
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
        return "\(whole / 3600) h \(whole % 3600 / 60) min"
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
