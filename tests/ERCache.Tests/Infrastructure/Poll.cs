namespace ERCache.Tests.Infrastructure;

/// <summary>Waits for other threads to reach a state — never for time to pass: the tests' clock is manual.</summary>
internal static class Poll
{
    /// <summary>Polls <paramref name="condition"/> every 5 ms for up to 10 s, then asserts it holds.</summary>
    public static async Task Until(Func<bool> condition, string because = "the expected state was not reached")
    {
        for (int i = 0; i < 2000 && !condition(); i++)
        {
            await Task.Delay(5);
        }

        Assert.True(condition(), because);
    }
}
