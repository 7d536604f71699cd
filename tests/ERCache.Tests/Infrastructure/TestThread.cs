namespace ERCache.Tests.Infrastructure;

/// <summary>Makes a test's steps take effect before its next line.</summary>
internal static class TestThread
{
    /// <summary>
    /// Leaves xUnit's synchronization context for the rest of the test. Under a non-default context, .NET never runs a
    /// <c>ConfigureAwait(false)</c> continuation inline on the thread that completes the awaited task (it queues it to
    /// the thread pool), so a timer fired by <c>FakeTimeProvider.Advance</c> or a tower released with <c>SetResult</c>
    /// would make the cache react later, on another thread. Without a context the reaction runs inside the call, and a
    /// test can check its effect on the next line instead of polling for it.
    /// </summary>
    public static void LeaveSynchronizationContext() => SynchronizationContext.SetSynchronizationContext(null);
}
