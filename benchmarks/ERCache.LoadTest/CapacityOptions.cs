using System.CommandLine;

/// <summary>The options of <c>--find-capacity</c>, declared with System.CommandLine beside the load test's own.</summary>
internal static class CapacityOptions
{
    private static readonly Option<bool> FindCapacityOption = new("--find-capacity") { Description = "Raise the request rate step by step until p99 passes --sla or fallbacks pass --max-fallback, with the cache on and off; report the largest rate each sustains" };
    private static readonly Option<double> SlaOption = new("--sla") { Description = "p99 latency bound of a sustained step, ms", DefaultValueFactory = _ => 50, Validators = { LoadSettings.Positive<double> } };
    private static readonly Option<double> MaxFallbackOption = new("--max-fallback") { Description = "Largest share of embeddings that may fall back in a sustained step, 0..1", DefaultValueFactory = _ => 0.01, Validators = { LoadSettings.ShareOfOne } };
    private static readonly Option<double> StartRateOption = new("--start-rate") { Description = "Requests per second of the first step", DefaultValueFactory = _ => 40, Validators = { LoadSettings.Positive<double> } };
    private static readonly Option<double> RateStepOption = new("--rate-step") { Description = "Each step's rate as a multiple of the last (> 1)", DefaultValueFactory = _ => 1.25, Validators = { AboveOne } };
    private static readonly Option<double> MaxRateOption = new("--max-rate") { Description = "Highest rate tried", DefaultValueFactory = _ => 3000, Validators = { LoadSettings.Positive<double> } };
    private static readonly Option<double> RefineStepOption = new("--refine-step") { Description = "After the first step that fails, rise again from the last sustained rate by this factor until a step fails, so the limit is known to this factor rather than to --rate-step (1: off)", DefaultValueFactory = _ => 1.06, Validators = { AtLeast(1) } };
    private static readonly Option<double> StepSecondsOption = new("--step-seconds") { Description = "Length of a step", DefaultValueFactory = _ => 5, Validators = { LoadSettings.Positive<double> } };
    private static readonly Option<double> CompressionOption = new("--compression") { Description = "How many times faster than the trace a step runs (the TTLs are divided by it)", DefaultValueFactory = _ => 60, Validators = { LoadSettings.Positive<double> } };
    private static readonly Option<double> TowerCpuOption = new("--tower-cpu") { Description = "Extra CPU each tower spends per user, microseconds: the towers, not HTTP, must bound the service", DefaultValueFactory = _ => 2000, Validators = { AtLeast(0) } };
    private static readonly Option<string?> ChartOption = new("--chart") { Description = "Draw p99 latency against rate, cache on and off, as SVG", HelpName = "FILE.svg" };

    public static IEnumerable<Option> All => [FindCapacityOption, SlaOption, MaxFallbackOption, StartRateOption, RateStepOption, RefineStepOption, MaxRateOption, StepSecondsOption, CompressionOption, TowerCpuOption, ChartOption];

    /// <summary>The search's settings when <c>--find-capacity</c> is given, else null (--rounds defaults to 2 here).</summary>
    public static CapacitySettings? From(ParseResult p) => !p.GetValue(FindCapacityOption) ? null : new CapacitySettings(
        p.GetValue(SlaOption), p.GetValue(MaxFallbackOption), p.GetValue(StartRateOption), p.GetValue(RateStepOption), p.GetValue(RefineStepOption), p.GetValue(MaxRateOption),
        p.GetValue(StepSecondsOption), p.GetValue(CompressionOption), p.GetValue(TowerCpuOption),
        LoadSettings.GivenRounds(p) ? LoadSettings.RoundsOf(p) : 2, LoadSettings.ItemsOf(p), p.GetValue(ChartOption));

    private static void AboveOne(System.CommandLine.Parsing.OptionResult r)
    {
        if (r.GetValueOrDefault<double>() <= 1)
        {
            r.AddError($"{r.Option.Name} must be more than 1 (got {r.GetValueOrDefault<double>()}).");
        }
    }

    /// <summary>A validator: the value is <paramref name="bound"/> or more.</summary>
    private static Action<System.CommandLine.Parsing.OptionResult> AtLeast(double bound) => r =>
    {
        if (r.GetValueOrDefault<double>() < bound)
        {
            r.AddError($"{r.Option.Name} must be {bound} or more (got {r.GetValueOrDefault<double>()}).");
        }
    };
}
