import JobWire
import LedgerModel
import XCTest

/// What the decoding tests ask of `Job.decode`: the command of a well-formed job, or the message
/// of a dead letter's `invalid_job`.
protocol DecodingCase {}

extension DecodingCase {
    func decode(_ text: String) -> Result<Job, InvalidJob> { Job.decode(Array(text.utf8)) }

    func op(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> LedgerOperation? {
        switch decode(text) {
        case .success(let job): return job.command.operation
        case .failure(let e): XCTFail("dead-lettered: \(e.error.message)", file: file, line: line); return nil
        }
    }

    func invalid(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        switch decode(text) {
        case .success(let job): XCTFail("decoded \(text) as \(job.command)", file: file, line: line); return ""
        case .failure(let e):
            XCTAssertEqual(e.error.code, "invalid_job", file: file, line: line)
            return e.error.message
        }
    }
}
