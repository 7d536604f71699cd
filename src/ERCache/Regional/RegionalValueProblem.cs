namespace ERCache.Regional;

/// <summary>Why a regional value was refused (see <see cref="RegionalValue.ProblemOf"/>): one kind of log line
/// each.</summary>
internal enum RegionalValueProblem
{
    /// <summary>No ERCache header, or another layout (a value of an older or newer library, or foreign
    /// bytes).</summary>
    NotAValue = 0,

    /// <summary>Another storage format or dimension count, or a length that does not match the header.</summary>
    OtherShape = 1,

    /// <summary>Another user's value under this user's key.</summary>
    OtherUser = 2,

    /// <summary>Another model's or version's value under this field (the fingerprint differs).</summary>
    OtherModel = 3,

    /// <summary>A well-formed value whose row holds a NaN or an infinity.</summary>
    NotFinite = 4,
}
