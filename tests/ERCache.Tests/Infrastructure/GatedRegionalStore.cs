using ERCache.Regional;
using ERCache.Testing;

namespace ERCache.Tests.Infrastructure;

/// <summary>
/// An in-memory regional store whose reads can be held: while <see cref="HoldReads"/> is armed, a read takes its values
/// at once (as a real store answers at the moment it executes the command) and returns them only when the test calls
/// <see cref="ReleaseReads"/>, so a test can run operations while a lookup's answer is in flight.
/// </summary>
internal sealed class GatedRegionalStore(TimeProvider time) : IRegionalStore
{
    private TaskCompletionSource? _gate;
    private int _held;

    public InMemoryRegionalStore Inner { get; } = new(time);

    /// <summary>Reads that reached the gate and wait there.</summary>
    public int HeldReads => Volatile.Read(ref _held);

    public void HoldReads() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void ReleaseReads()
    {
        var gate = _gate;
        _gate = null;
        gate?.SetResult();
    }

    public async Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, CancellationToken cancellationToken)
    {
        var values = await Inner.ReadAsync(field, users, cancellationToken);
        if (_gate is { } gate)
        {
            Interlocked.Increment(ref _held);
            await gate.Task.WaitAsync(cancellationToken);
        }

        return values;
    }

    public Task<int> WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken) => Inner.WriteAsync(groups, cancellationToken);

    /// <summary>While set, a removal waits for it (then removes).</summary>
    public TaskCompletionSource? RemovalGate { get; set; }

    public async Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken)
    {
        if (RemovalGate is { } gate)
        {
            await gate.Task.WaitAsync(cancellationToken);
        }

        await Inner.RemoveAsync(userId, field, removedAtUnixMs, remember, cancellationToken);
    }
}
