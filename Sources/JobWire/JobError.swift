/// Why a job could not be read: it becomes a dead letter with code `invalid_job`.
///
/// The message names the field, so a producer can fix its job from the dead letter alone.
public struct JobError: Error, Sendable, Equatable {
    public var code: String
    public var message: String

    public init(code: String = "invalid_job", _ message: String) {
        self.code = code
        self.message = message
    }
}
