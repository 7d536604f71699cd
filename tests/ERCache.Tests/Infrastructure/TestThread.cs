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
    /// <remarks>Call it from the test method or from a helper that is not an async method: an async method's builder
    /// restores its caller's context when it returns, so a helper that is one leaves the context only for itself.</remarks>
    public static void LeaveSynchronizationContext() => SynchronizationContext.SetSynchronizationContext(null);

    /// <summary>Fails when the calling test still runs under a synchronization context (see
    /// <see cref="LeaveSynchronizationContext"/>): a helper whose steps must take effect at once checks it, so a test
    /// that never left fails here every time instead of now and then on a loaded machine.</summary>
    /// <remarks>The base <see cref="SynchronizationContext"/> passes: .NET inlines continuations under it as under
    /// none.</remarks>
    public static void AssertLeft()
    {
        var current = SynchronizationContext.Current;
        Assert.True(
            current is null || current.GetType() == typeof(SynchronizationContext),
            $"The test runs under {current?.GetType().Name}: leave it first (TestThread.LeaveSynchronizationContext, not from an async helper).");
    }
}
