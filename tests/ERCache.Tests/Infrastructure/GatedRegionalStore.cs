using ERCache.Regional;
using ERCache.Testing;

namespace ERCache.Tests.Infrastructure;

/// <summary>
/// An in-memory regional store whose reads can be held: while <see cref="HoldReads"/> is armed, a read takes its values
/// at once (as a real store answers at the moment it executes the command) and returns them only when the test calls
/// <see cref="ReleaseReads"/>, so a test can run operations while a lookup's answer is in flight. Writes and removals
/// can be held alike.
/// </summary>
internal sealed class GatedRegionalStore(TimeProvider time) : IRegionalStore
{
    private TaskCompletionSource? _gate;
    private int _held;
    private int _writesStarted;
    private readonly TaskCompletionSource _writeHeld = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public InMemoryRegionalStore Inner { get; } = new(time);

    private readonly System.Threading.Channels.Channel<bool> _heldSignal = System.Threading.Channels.Channel.CreateUnbounded<bool>();

    /// <summary>Waits (up to 10 s, a guard against a hang) until one more read has reached the gate than this has
    /// returned for so far; returns whether one did.</summary>
    public async Task<bool> NextHeldReadAsync()
    {
        try
        {
            return await _heldSignal.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>Reads that reached the gate and wait there.</summary>
    public int HeldReads => Volatile.Read(ref _held);

    public void HoldReads() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void ReleaseReads()
    {
        var gate = _gate;
        _gate = null;
        gate?.SetResult();
    }

    /// <summary>The value length the last read asked for.</summary>
    public int LastValueBytes { get; private set; }

    public async Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken)
    {
        LastValueBytes = valueBytes;
        var values = await Inner.ReadAsync(field, users, valueBytes, cancellationToken);
        if (_gate is { } gate)
        {
            Interlocked.Increment(ref _held);
            _heldSignal.Writer.TryWrite(true);
            await gate.Task.WaitAsync(cancellationToken);
        }

        return values;
    }

    /// <summary>While set, a write waits for it (a stalled store: SIGSTOP), then writes; cancellation ends the wait.</summary>
    public TaskCompletionSource? WriteGate { get; set; }

    /// <summary>Writes that reached the store, the stalled ones included.</summary>
    public int WritesStarted => Volatile.Read(ref _writesStarted);

    /// <summary>Completes when a write first reaches a set <see cref="WriteGate"/>.</summary>
    public Task WriteHeld => _writeHeld.Task;

    public async Task<RegionalWriteResult> WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _writesStarted);
        if (WriteGate is { } gate)
        {
            _writeHeld.TrySetResult();
            await gate.Task.WaitAsync(cancellationToken);
        }

        return await Inner.WriteAsync(groups, cancellationToken);
    }

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
