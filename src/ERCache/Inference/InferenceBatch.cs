using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace ERCache.Inference;

/// <summary>
/// One call's worth of users for a model's inference delegate, and the buffer it fills
/// (<see cref="Count"/> × <see cref="Dimensions"/> floats, row <c>i</c> for <c>UserIds[i]</c>).
/// </summary>
/// <remarks>
/// The buffers are pooled and owned by the cache: they are returned only after the delegate's task completes,
/// so a delegate that outlives its deadline never writes into memory a caller already got back. Rows start
/// as NaN, so a row the delegate forgets to write is rejected as an invalid vector rather than cached.
/// Different rows may be written from different threads.
/// </remarks>
public sealed class InferenceBatch
{
    private readonly long[] _users;
    private readonly float[] _vectors;
    private readonly RowStatus[] _status;
    private int _released;

    internal InferenceBatch(string model, string version, int dimensions, int count)
    {
        _users = ArrayPool<long>.Shared.Rent(count);
        _vectors = ArrayPool<float>.Shared.Rent(count * dimensions);
        _status = ArrayPool<RowStatus>.Shared.Rent(count);
        Prepare(model, version, dimensions, count);
    }

    /// <summary>
    /// A batch for a tower's own unit tests: the users in row order, every row unwritten (NaN). The cache builds its own
    /// batches from pooled buffers; this one's buffers are the garbage collector's. Run the tower on it, then read each
    /// row with <see cref="GetRow"/> and what the cache would make of it with <see cref="GetRowOutcome"/>.
    /// </summary>
    /// <param name="model">The model name.</param>
    /// <param name="version">The model version.</param>
    /// <param name="dimensions">The length of each vector; at least 1 and at most <see cref="ERCacheLimits.MaxDimensions"/>.</param>
    /// <param name="userIds">The users, at least one.</param>
    /// <exception cref="ArgumentException">An argument is empty or out of range.</exception>
    public InferenceBatch(string model, string version, int dimensions, ReadOnlySpan<long> userIds)
        : this(
            CheckName(model, nameof(model)), CheckName(version, nameof(version)), CheckDimensions(dimensions),
            userIds.IsEmpty ? throw new ArgumentException("A batch has at least one user.", nameof(userIds)) : userIds.Length) =>
        userIds.CopyTo(UsersToFill);

    internal enum RowStatus : byte
    {
        Written = 0,
        Failed = 1,
        WrongLength = 2,
    }

    /// <summary>The model name.</summary>
    public string Model { get; private set; }

    /// <summary>The model version the vectors will be cached under.</summary>
    public string Version { get; private set; }

    /// <summary>Length of each vector.</summary>
    public int Dimensions { get; private set; }

    /// <summary>Number of users in the batch.</summary>
    public int Count { get; private set; }

    /// <summary>The users, in row order.</summary>
    public ReadOnlyMemory<long> UserIds => _users.AsMemory(0, Count);

    /// <summary>All rows, <see cref="Count"/> × <see cref="Dimensions"/> floats.</summary>
    public Memory<float> Destination => _vectors.AsMemory(0, Count * Dimensions);

    /// <summary>The user ids, for the cache to fill before the call.</summary>
    internal Span<long> UsersToFill => _users.AsSpan(0, Count);

    /// <summary>The row for user <paramref name="index"/>.</summary>
    public Memory<float> GetRow(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return _vectors.AsMemory(index * Dimensions, Dimensions);
    }

    /// <summary>
    /// Copies a computed vector into row <paramref name="index"/>. A vector whose length is not
    /// <see cref="Dimensions"/> is not copied: the user's inference counts as failed
    /// (<see cref="InferenceFailureCause.InvalidVector"/>) and nothing is cached.
    /// </summary>
    public void SetRow(int index, ReadOnlySpan<float> vector)
    {
        var row = GetRow(index).Span;
        if (vector.Length != Dimensions)
        {
            _status[index] = RowStatus.WrongLength;
            WrongLength = vector.Length;
            return;
        }

        vector.CopyTo(row);
        _status[index] = RowStatus.Written;
    }

    /// <summary>Reports that inference failed for user <paramref name="index"/> only
    /// (<see cref="InferenceFailureCause.Error"/>); the other users' rows are still used.</summary>
    public void Fail(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        _status[index] = RowStatus.Failed;
    }

    /// <summary>What the cache makes of row <paramref name="index"/> once the delegate returned:
    /// <see cref="InferenceFailureCause.None"/> for a vector it caches, <see cref="InferenceFailureCause.Error"/> for a
    /// row the delegate failed (<see cref="Fail"/>), <see cref="InferenceFailureCause.InvalidVector"/> for a row of the
    /// wrong length, with a value that is not finite, or never written.</summary>
    public InferenceFailureCause GetRowOutcome(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return FailureClassifier.OfRow(_status[index], Row(index));
    }

    /// <summary>The length of the last vector <see cref="SetRow"/> refused (for the log line naming it).</summary>
    internal int WrongLength { get; private set; }

    /// <summary>What the delegate reported for row <paramref name="index"/> (its values are checked separately).</summary>
    internal RowStatus StatusOf(int index) => _status[index];

    internal ReadOnlySpan<float> Row(int index) => _vectors.AsSpan(index * Dimensions, Dimensions);

    /// <summary>
    /// Makes a finished batch (its delegate's task completed, not released) the next call's, when its buffers are
    /// large enough; otherwise leaves it unchanged and returns false.
    /// </summary>
    internal bool TryReuse(string model, string version, int dimensions, int count)
    {
        if (Volatile.Read(ref _released) != 0 || _users.Length < count || _status.Length < count || _vectors.Length < (long)count * dimensions)
        {
            return false;
        }

        Prepare(model, version, dimensions, count);
        return true;
    }

    private static string CheckName(string value, string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(value, name);
        return value;
    }

    private static int CheckDimensions(int dimensions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimensions, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(dimensions, ERCacheLimits.MaxDimensions);
        return dimensions;
    }

    [MemberNotNull(nameof(Model), nameof(Version))]
    private void Prepare(string model, string version, int dimensions, int count)
    {
        Model = model;
        Version = version;
        Dimensions = dimensions;
        Count = count;
        _vectors.AsSpan(0, count * dimensions).Fill(float.NaN);
        _status.AsSpan(0, count).Clear();
        WrongLength = 0;
    }

    /// <summary>Returns the pooled buffers; called once, after the delegate's task has completed.</summary>
    internal void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        ArrayPool<long>.Shared.Return(_users);
        ArrayPool<float>.Shared.Return(_vectors);
        ArrayPool<RowStatus>.Shared.Return(_status);
    }
}
